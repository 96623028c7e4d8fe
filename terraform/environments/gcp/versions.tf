# The GCP environment: a private regional GKE cluster with a GPU pool, its VPC,
# an Artifact Registry repository, Workload Identity service accounts and Cloud
# Monitoring alerts and dashboard. The state backend is in backend.tf.
#
# Providers are pinned here; commit the .terraform.lock.hcl that
# `terraform init` writes (`terraform providers lock -platform=linux_amd64
# -platform=darwin_arm64` for more platforms), since the pipeline runs init
# with -lockfile=readonly.
terraform {
  required_version = ">= 1.9"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = local.labels
}
