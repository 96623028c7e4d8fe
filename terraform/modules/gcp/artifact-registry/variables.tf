variable "project_id" {
  description = "ID of the Google Cloud project that holds the repository."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "The project_id must be a Google Cloud project ID: 6 to 30 characters, lowercase letters, digits and '-', starting with a letter."
  }
}

variable "location" {
  description = "Region of the repository; use the cluster's region so that pulls stay in-region (no egress charges)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.location))
    error_message = "The location must be a Google Cloud region name such as us-central1."
  }
}

variable "repository_id" {
  description = "ID of the repository; images are REGION-docker.pkg.dev/PROJECT/REPOSITORY_ID/IMAGE."
  type        = string
  default     = "inferops"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.repository_id))
    error_message = "The repository_id must be 1 to 63 characters: lowercase letters, digits and '-', starting with a letter."
  }
}

variable "description" {
  description = "Description of the repository."
  type        = string
  default     = "Images of the inferops inference service."
}

variable "kms_key_name" {
  description = "Cloud KMS key (projects/P/locations/REGION/keyRings/R/cryptoKeys/K, same region as the repository) that encrypts the images; null uses Google-managed encryption. Set at creation only: changing it replaces the repository."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.kms_key_name))
    error_message = "The kms_key_name must be a crypto key ID: projects/PROJECT/locations/REGION/keyRings/RING/cryptoKeys/KEY."
  }
}

variable "labels" {
  description = "Labels of the repository."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key, value in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", key)) && can(regex("^[a-z0-9_-]{0,63}$", value))])
    error_message = "Label keys must start with a lowercase letter and both keys and values may hold only lowercase letters, digits, '_' and '-' (63 characters at most)."
  }
}

variable "keep_newest_versions" {
  description = "Number of newest versions of each image that cleanup never deletes (they include the stable and canary images)."
  type        = number
  default     = 30

  validation {
    condition     = var.keep_newest_versions >= 1 && var.keep_newest_versions <= 1000 && floor(var.keep_newest_versions) == var.keep_newest_versions
    error_message = "The keep_newest_versions must be a whole number from 1 to 1000."
  }
}

variable "delete_untagged_after_days" {
  description = "Age in days after which untagged versions (superseded build layers) are deleted, unless among the newest kept."
  type        = number
  default     = 7

  validation {
    condition     = var.delete_untagged_after_days >= 1 && var.delete_untagged_after_days <= 3650 && floor(var.delete_untagged_after_days) == var.delete_untagged_after_days
    error_message = "The delete_untagged_after_days must be a whole number from 1 to 3650."
  }
}

variable "delete_after_days" {
  description = "Age in days after which any version is deleted, unless among the newest kept."
  type        = number
  default     = 180

  validation {
    condition     = var.delete_after_days >= 1 && var.delete_after_days <= 3650 && floor(var.delete_after_days) == var.delete_after_days && var.delete_after_days >= var.delete_untagged_after_days
    error_message = "The delete_after_days must be a whole number from 1 to 3650, and at least delete_untagged_after_days."
  }
}

variable "cleanup_dry_run" {
  description = "Only report what the cleanup policies would delete, without deleting."
  type        = bool
  default     = false
}

variable "reader_members" {
  description = "Members allowed to pull images, keyed by a fixed name (for example { gke_nodes = \"serviceAccount:...\" }), so that the keys are known at plan time."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for member in values(var.reader_members) : can(regex("^(serviceAccount|group|user|principal|principalSet):", member))])
    error_message = "Each reader member must be an IAM member such as serviceAccount:EMAIL or group:EMAIL (never allUsers or allAuthenticatedUsers)."
  }
}
