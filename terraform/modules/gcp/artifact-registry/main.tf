# The Docker repository the pipeline pushes the service's images to and the
# cluster pulls them from. Tags are immutable, so a tag always names the same
# digest (a rollback redeploys exactly what was judged). Cleanup policies keep
# the newest versions and delete old and untagged ones. Encryption with a
# customer-managed Cloud KMS key is optional (kms_key_name).

data "google_project" "this" {
  count = var.kms_key_name == null ? 0 : 1

  project_id = var.project_id
}

resource "google_artifact_registry_repository" "this" {
  #checkov:skip=CKV_GCP_84:Customer-managed encryption is optional by design (kms_key_name); without a key, Google-managed keys encrypt the images.
  project       = var.project_id
  location      = var.location
  repository_id = var.repository_id
  description   = var.description
  format        = "DOCKER"
  mode          = "STANDARD_REPOSITORY"
  kms_key_name  = var.kms_key_name
  labels        = var.labels

  docker_config {
    immutable_tags = true
  }

  cleanup_policy_dry_run = var.cleanup_dry_run

  # KEEP wins over DELETE: the newest versions survive whatever their age.
  cleanup_policies {
    id     = "keep-newest"
    action = "KEEP"

    most_recent_versions {
      keep_count = var.keep_newest_versions
    }
  }

  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"

    condition {
      tag_state  = "UNTAGGED"
      older_than = "${var.delete_untagged_after_days * 86400}s"
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"

    condition {
      tag_state  = "ANY"
      older_than = "${var.delete_after_days * 86400}s"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.registry]
}

# With a customer-managed key, the Artifact Registry service agent must be
# able to use it before the repository is created.
resource "google_kms_crypto_key_iam_member" "registry" {
  count = var.kms_key_name == null ? 0 : 1

  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:service-${data.google_project.this[0].number}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
}

resource "google_artifact_registry_repository_iam_member" "readers" {
  for_each = var.reader_members

  project    = var.project_id
  location   = google_artifact_registry_repository.this.location
  repository = google_artifact_registry_repository.this.name
  role       = "roles/artifactregistry.reader"
  member     = each.value
}
