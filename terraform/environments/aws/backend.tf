# State lives in an S3 bucket and is locked with a DynamoDB table. The block is
# left empty (a partial configuration) so that each environment supplies its own
# settings at init time and nothing account-specific is committed here:
#
#   terraform init \
#     -backend-config="bucket=acme-inferops-tfstate" \
#     -backend-config="key=inferops/prod/terraform.tfstate" \
#     -backend-config="region=us-east-1" \
#     -backend-config="dynamodb_table=inferops-tfstate-lock" \
#     -backend-config="encrypt=true"
#
# or the same keys, one "key = value" a line, in a file passed with
# -backend-config=prod.s3.tfbackend. The keys:
#
#   bucket          S3 bucket that holds the state (versioning on, public access
#                   blocked); it must exist before the first init.
#   key             path of this environment's state object in the bucket, one
#                   per environment, for example inferops/<environment>/terraform.tfstate.
#   region          region of the bucket (and of the lock table).
#   dynamodb_table  DynamoDB table used for state locking; its partition key must
#                   be the string attribute LockID. Two runs against one
#                   environment then never write its state at once.
#   encrypt         true: the state object is encrypted at rest (it holds ARNs,
#                   endpoints and certificate data).
#   kms_key_id      optional: a KMS key ARN for the state object instead of SSE-S3.
#
# Terraform 1.11 and later warn that dynamodb_table is deprecated in favour of
# use_lockfile = true (a lock object beside the state in S3); either may be passed.
terraform {
  backend "s3" {}
}
