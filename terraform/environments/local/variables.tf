variable "environment" {
  description = "Name of the environment; it names the GitOps path environments/<environment>."
  type        = string
  default     = "local"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.environment))
    error_message = "The environment must be a lowercase DNS label: a-z, 0-9 and '-', 1 to 63 characters, starting and ending with a letter or digit."
  }
}

variable "state_dir" {
  description = "Absolute path of the environment's state folder (for example /srv/app/.inferops/local); every component keeps its files under it."
  type        = string

  validation {
    condition     = startswith(var.state_dir, "/")
    error_message = "The state_dir must be an absolute path (it must start with \"/\")."
  }
}

variable "base_port" {
  description = "First port of the environment's port block; each component listens at a fixed offset from it."
  type        = number
  default     = 18000

  validation {
    condition     = var.base_port >= 1024 && var.base_port <= 64000 && floor(var.base_port) == var.base_port
    error_message = "The base_port must be a whole number from 1024 to 64000 so that base_port+199 stays an unprivileged, valid port."
  }
}

variable "stable_replicas" {
  description = "Default number of stable service instances when the GitOps repository is first seeded."
  type        = number
  default     = 2

  validation {
    condition     = var.stable_replicas >= 1 && var.stable_replicas <= 8 && floor(var.stable_replicas) == var.stable_replicas
    error_message = "The stable_replicas must be a whole number from 1 to 8."
  }
}

variable "canary_replicas" {
  description = "Default number of canary service instances when the GitOps repository is first seeded."
  type        = number
  default     = 1

  validation {
    condition     = var.canary_replicas >= 1 && var.canary_replicas <= 8 && floor(var.canary_replicas) == var.canary_replicas
    error_message = "The canary_replicas must be a whole number from 1 to 8."
  }
}
