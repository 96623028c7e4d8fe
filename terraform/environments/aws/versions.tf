# The AWS environment needs the AWS provider. The modules work with the 5.100+
# and 6.x lines; this environment pins the 5.x line from 5.100 (its newest).
terraform {
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}
