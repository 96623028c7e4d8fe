variable "project_id" {
  description = "ID of the Google Cloud project that holds the service accounts and receives their project roles."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "The project_id must be a Google Cloud project ID: 6 to 30 characters, lowercase letters, digits and '-', starting with a letter."
  }
}

variable "name" {
  description = "Prefix of the service account IDs (<name>-inference, <name>-pipeline)."
  type        = string

  validation {
    # 20 characters at most, so that "<name>-inference" fits the 30-character
    # limit of service account IDs.
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "The name must be 3 to 20 characters: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit."
  }
}

variable "workload_pool" {
  description = "Workload Identity pool of the cluster (PROJECT.svc.id.goog); pass the cluster's output so that the bindings wait for the cluster that creates the pool."
  type        = string

  validation {
    condition     = endswith(var.workload_pool, ".svc.id.goog")
    error_message = "The workload_pool must be a Workload Identity pool, PROJECT.svc.id.goog."
  }
}

variable "namespace" {
  description = "Kubernetes namespace of the service's and the pipeline's Kubernetes service accounts."
  type        = string
  default     = "inferops"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "The namespace must be a Kubernetes namespace name (a lowercase DNS label)."
  }
}

variable "service_ksa" {
  description = "Kubernetes service account of the inference service."
  type        = string
  default     = "inference"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$", var.service_ksa))
    error_message = "The service_ksa must be a Kubernetes object name (lowercase DNS subdomain)."
  }
}

variable "pipeline_ksa" {
  description = "Kubernetes service account of the release pipeline."
  type        = string
  default     = "pipeline"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$", var.pipeline_ksa))
    error_message = "The pipeline_ksa must be a Kubernetes object name (lowercase DNS subdomain)."
  }
}

variable "service_roles" {
  description = "Project roles of the service's Google service account: write custom metrics and traces."
  type        = list(string)
  default = [
    "roles/monitoring.metricWriter",
    "roles/cloudtrace.agent",
  ]

  validation {
    condition     = alltrue([for role in var.service_roles : startswith(role, "roles/") && !contains(["roles/owner", "roles/editor", "roles/viewer"], role)])
    error_message = "Each service role must be a predefined or custom role (roles/...), never a basic role (owner, editor, viewer)."
  }
}

variable "pipeline_roles" {
  description = "Project roles of the pipeline's Google service account: read metrics, edit alert policies, deploy to the cluster (push rights come from registry_repository)."
  type        = list(string)
  default = [
    "roles/monitoring.viewer",
    "roles/monitoring.alertPolicyEditor",
    "roles/container.developer",
  ]

  validation {
    condition     = alltrue([for role in var.pipeline_roles : startswith(role, "roles/") && !contains(["roles/owner", "roles/editor", "roles/viewer"], role)])
    error_message = "Each pipeline role must be a predefined or custom role (roles/...), never a basic role (owner, editor, viewer)."
  }
}

variable "registry_location" {
  description = "Location (region) of the Artifact Registry repository the pipeline pushes to."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+(-[a-z]+[0-9]+)?$", var.registry_location))
    error_message = "The registry_location must be a region such as us-central1, or a multi-region such as us."
  }
}

variable "registry_repository" {
  description = "Name (repository ID) of the Artifact Registry repository the pipeline pushes to."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.registry_repository))
    error_message = "The registry_repository must be a repository ID: lowercase letters, digits and '-', starting with a letter."
  }
}
