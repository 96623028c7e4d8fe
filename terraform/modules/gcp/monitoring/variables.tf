variable "project_id" {
  description = "ID of the Google Cloud project whose Cloud Monitoring receives the service's metrics."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "The project_id must be a Google Cloud project ID: 6 to 30 characters, lowercase letters, digits and '-', starting with a letter."
  }
}

variable "name" {
  description = "Name of the environment; it prefixes the display names of the policies, channel and dashboard."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name))
    error_message = "The name must be 3 to 40 characters: lowercase letters, digits and '-', starting with a letter."
  }
}

variable "namespace" {
  description = "namespace label of the service's generic_task resource (the service's telemetry.gcp.namespace setting)."
  type        = string
  default     = "inferops"

  validation {
    condition     = length(var.namespace) > 0 && !strcontains(var.namespace, "\"")
    error_message = "The namespace must be a non-empty string without double quotes."
  }
}

variable "job" {
  description = "job label of the service's generic_task resource; the service always writes inferops-service."
  type        = string
  default     = "inferops-service"

  validation {
    condition     = length(var.job) > 0 && !strcontains(var.job, "\"")
    error_message = "The job must be a non-empty string without double quotes."
  }
}

variable "create_metric_descriptors" {
  description = "Declare the service's custom metric descriptors here, so alert policies can be created before the first point is written. Destroying them deletes the metrics' data."
  type        = bool
  default     = true
}

variable "latency_route" {
  description = "Route whose latency the p95 alert and chart watch; an empty string watches all routes."
  type        = string
  default     = "/v1/chat/completions"

  validation {
    condition     = var.latency_route == "" || (startswith(var.latency_route, "/") && !strcontains(var.latency_route, "\""))
    error_message = "The latency_route must be empty or a route template starting with '/' (without double quotes)."
  }
}

variable "latency_p95_threshold_seconds" {
  description = "The p95 request duration, in seconds, above which a track alerts."
  type        = number
  default     = 2

  validation {
    condition     = var.latency_p95_threshold_seconds > 0 && var.latency_p95_threshold_seconds <= 600
    error_message = "The latency_p95_threshold_seconds must be greater than 0 and at most 600."
  }
}

variable "error_ratio_threshold" {
  description = "Fraction of requests answered with a 5xx status above which a track alerts (0.01 = 1%)."
  type        = number
  default     = 0.01

  validation {
    condition     = var.error_ratio_threshold > 0 && var.error_ratio_threshold < 1
    error_message = "The error_ratio_threshold must be between 0 and 1, exclusive."
  }
}

variable "cost_budget_usd_per_hour" {
  description = "Budget of the service's estimated inference cost, in USD per hour, summed over all replicas; a sustained higher rate alerts."
  type        = number
  default     = 5

  validation {
    condition     = var.cost_budget_usd_per_hour > 0 && var.cost_budget_usd_per_hour <= 100000
    error_message = "The cost_budget_usd_per_hour must be greater than 0 and at most 100000."
  }
}

variable "alert_window_seconds" {
  description = "Alignment window and duration of the latency and error-ratio conditions, in seconds (a whole number of minutes)."
  type        = number
  default     = 300

  validation {
    condition     = var.alert_window_seconds >= 60 && var.alert_window_seconds <= 3600 && var.alert_window_seconds % 60 == 0
    error_message = "The alert_window_seconds must be a whole number of minutes from 60 to 3600."
  }
}

variable "cost_window_seconds" {
  description = "Alignment window and duration of the cost condition, in seconds (a whole number of minutes)."
  type        = number
  default     = 900

  validation {
    condition     = var.cost_window_seconds >= 60 && var.cost_window_seconds <= 3600 && var.cost_window_seconds % 60 == 0
    error_message = "The cost_window_seconds must be a whole number of minutes from 60 to 3600."
  }
}

variable "alerts_enabled" {
  description = "Whether the alert policies are enabled (they are created either way)."
  type        = bool
  default     = true
}

variable "notification_email" {
  description = "E-mail address that receives the alerts; null creates no e-mail channel."
  type        = string
  default     = null

  validation {
    condition     = var.notification_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.notification_email))
    error_message = "The notification_email must be an e-mail address."
  }
}

variable "notification_channel_ids" {
  description = "IDs of further notification channels (projects/P/notificationChannels/N), such as Slack or PagerDuty, that receive the alerts."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.notification_channel_ids : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", id))])
    error_message = "Each notification channel ID must look like projects/PROJECT/notificationChannels/ID."
  }
}

variable "labels" {
  description = "User labels added to the alert policies and the notification channel."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key, value in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", key)) && can(regex("^[a-z0-9_-]{0,63}$", value))])
    error_message = "Label keys must start with a lowercase letter and both keys and values may hold only lowercase letters, digits, '_' and '-' (63 characters at most)."
  }
}
