# Application-layer secrets encryption: Kubernetes Secrets in etcd are
# encrypted with a data key that this Cloud KMS key wraps. The key lives in the
# cluster's region, as GKE requires.
#
# Cloud KMS never deletes key rings or keys: destroying them only removes them
# from the state (and schedules the key's versions for destruction). A random
# suffix lets the environment be destroyed and created again under the same
# name without colliding with the previous, still existing key ring.

resource "random_id" "kms" {
  byte_length = 2
}

resource "google_kms_key_ring" "this" {
  project  = var.project_id
  name     = "${var.name}-gke-${random_id.kms.hex}"
  location = var.region
}

resource "google_kms_crypto_key" "secrets" {
  #checkov:skip=CKV_GCP_82:The pipeline destroys whole environments; prevent_destroy would block that. Destroying only schedules the versions for destruction after destroy_scheduled_duration, and no data outlives the cluster.
  name            = "gke-secrets"
  key_ring        = google_kms_key_ring.this.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = var.kms_rotation_period

  destroy_scheduled_duration = var.kms_destroy_scheduled_duration

  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = var.kms_protection_level
  }

  labels = local.labels
}

resource "google_kms_crypto_key_iam_member" "gke_secrets" {
  crypto_key_id = google_kms_crypto_key.secrets.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.gke_service_agent
}
