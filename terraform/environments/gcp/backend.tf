# State is kept in a Cloud Storage bucket (with object versioning on, so an
# earlier state can be restored; the backend locks the state itself). The
# backend is configured partially: the bucket and the prefix are given at init
# time, so one set of sources serves every GCP environment and project.
#
#   terraform init \
#     -backend-config="bucket=<PROJECT_ID>-tfstate" \
#     -backend-config="prefix=inferops/<environment>"
#
# bucket: an existing bucket the caller can read and write (create it once:
#         gcloud storage buckets create gs://<PROJECT_ID>-tfstate
#           --location=<REGION> --uniform-bucket-level-access
#         gcloud storage buckets update gs://<PROJECT_ID>-tfstate --versioning).
# prefix: the folder of this environment's state in the bucket; one prefix per
#         environment (Terraform writes <prefix>/default.tfstate).
terraform {
  backend "gcs" {}
}
