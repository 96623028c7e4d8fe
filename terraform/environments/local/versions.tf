# The local environment needs no providers: terraform_data is built into Terraform,
# so this module plans and applies offline. The state path is supplied at init time
# with -backend-config="path=..." so that nothing is written beside these sources.
terraform {
  required_version = ">= 1.5"

  backend "local" {}
}
