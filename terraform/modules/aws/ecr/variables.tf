variable "repository_name" {
  description = "Name of the ECR repository of the service image (for example inferops/service)."
  type        = string
  default     = "inferops/service"

  validation {
    condition     = can(regex("^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$", var.repository_name)) && length(var.repository_name) >= 2 && length(var.repository_name) <= 200
    error_message = "The repository_name must be 2 to 200 characters of lowercase letters, digits, and '.', '_', '-' or '/' between them."
  }
}

variable "keep_image_count" {
  description = "How many of the most recent images to keep; older ones expire. Keep enough to roll back to any release still in use."
  type        = number
  default     = 100

  validation {
    condition     = var.keep_image_count >= 10 && var.keep_image_count <= 10000 && floor(var.keep_image_count) == var.keep_image_count
    error_message = "The keep_image_count must be a whole number from 10 to 10000."
  }
}

variable "untagged_expiry_days" {
  description = "Days after its push an untagged image (a superseded build, a failed push) expires."
  type        = number
  default     = 7

  validation {
    condition     = var.untagged_expiry_days >= 1 && var.untagged_expiry_days <= 365 && floor(var.untagged_expiry_days) == var.untagged_expiry_days
    error_message = "The untagged_expiry_days must be a whole number from 1 to 365."
  }
}

variable "force_delete" {
  description = "Let terraform destroy delete the repository even while it holds images (for throwaway environments only)."
  type        = bool
  default     = false
}

variable "kms_deletion_window_days" {
  description = "Days a deleted KMS key waits before it is destroyed (and can still be restored)."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30 && floor(var.kms_deletion_window_days) == var.kms_deletion_window_days
    error_message = "The kms_deletion_window_days must be a whole number from 7 to 30."
  }
}

variable "tags" {
  description = "Tags added to every resource of the module (on top of the provider's default tags)."
  type        = map(string)
  default     = {}
}
