variable "name" {
  description = "Name of the deployment; it prefixes the alarms (<name>-...), the SNS topic, the dashboard and the service log group /inferops/<name>/service."
  type        = string
  default     = "inferops"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name))
    error_message = "The name must be 2 to 32 characters of a-z, 0-9 and '-', starting with a letter and ending with a letter or digit."
  }
}

variable "cluster_name" {
  description = "Name of the EKS cluster; it names the Container Insights log groups /aws/containerinsights/<cluster>/..."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9_-]{0,99}$", var.cluster_name))
    error_message = "The cluster_name must be 1 to 100 characters of letters, digits, '-' and '_', starting with a letter or digit."
  }
}

variable "metric_namespace" {
  description = "CloudWatch namespace the service's exporter publishes to (its telemetry.cloudwatch.namespace)."
  type        = string
  default     = "Inferops/Service"

  validation {
    condition     = length(var.metric_namespace) >= 1 && length(var.metric_namespace) <= 255 && !startswith(var.metric_namespace, "AWS/") && can(regex("^[A-Za-z0-9/_.#:-]+$", var.metric_namespace))
    error_message = "The metric_namespace must be 1 to 255 characters of letters, digits and / _ . # : -, and not an AWS/ namespace."
  }
}

variable "model" {
  description = "Model id the service serves: the value of the Model dimension of its metrics."
  type        = string
  default     = "sim-llama-3-8b"

  validation {
    condition     = length(var.model) >= 1 && length(var.model) <= 255 && !strcontains(var.model, "\"") && !strcontains(var.model, "'")
    error_message = "The model must be 1 to 255 characters without quotes."
  }
}

variable "tracks" {
  description = "Service version each watched track runs, by track name (the Track and Version dimensions): for example { stable = \"v1.4.2\", canary = \"v1.5.0\" }. \"unknown\" is what the service reports when no version was set. The pipeline re-targets the alarms at each promotion."
  type        = map(string)
  default     = { stable = "unknown" }

  validation {
    condition     = length(var.tracks) >= 1 && alltrue([for t in keys(var.tracks) : contains(["stable", "canary"], t)])
    error_message = "The tracks must name stable, canary or both."
  }

  validation {
    condition     = alltrue([for v in values(var.tracks) : length(v) >= 1 && length(v) <= 255 && !strcontains(v, "\"") && !strcontains(v, "'")])
    error_message = "Each track's version must be 1 to 255 characters without quotes."
  }
}

variable "routes" {
  description = "Values of the Route dimension the service reports (its chat route and \"other\"); the error-rate and cost alarms add them up."
  type        = list(string)
  default     = ["/v1/chat/completions", "other"]

  validation {
    condition     = length(var.routes) >= 1 && length(var.routes) <= 4 && length(distinct(var.routes)) == length(var.routes)
    error_message = "The routes must list 1 to 4 distinct routes (an alarm adds up at most 10 series)."
  }
}

variable "latency_route" {
  description = "Route whose p95 latency is alarmed on (the Route dimension)."
  type        = string
  default     = "/v1/chat/completions"

  validation {
    condition     = length(var.latency_route) >= 1 && !strcontains(var.latency_route, "\"") && !strcontains(var.latency_route, "'")
    error_message = "The latency_route must be a non-empty route without quotes."
  }
}

variable "latency_p95_threshold_seconds" {
  description = "p95 request latency, in seconds, above which a track's latency alarm fires (the SLO's latency_p95_s)."
  type        = number
  default     = 2.0

  validation {
    condition     = var.latency_p95_threshold_seconds > 0 && var.latency_p95_threshold_seconds <= 600
    error_message = "The latency_p95_threshold_seconds must be more than 0 and at most 600."
  }
}

variable "error_rate_threshold_percent" {
  description = "Share of 5xx answers, in percent of requests, above which a track's error-rate alarm fires (the SLO's error_rate, as a percentage)."
  type        = number
  default     = 1

  validation {
    condition     = var.error_rate_threshold_percent > 0 && var.error_rate_threshold_percent < 100
    error_message = "The error_rate_threshold_percent must be more than 0 and less than 100."
  }
}

variable "error_rate_min_requests" {
  description = "Fewest requests in a period for its error rate to count; quieter periods read 0 so that one failed request out of three cannot page."
  type        = number
  default     = 20

  validation {
    condition     = var.error_rate_min_requests >= 1 && floor(var.error_rate_min_requests) == var.error_rate_min_requests
    error_message = "The error_rate_min_requests must be a whole number of at least 1."
  }
}

variable "cost_budget_usd_per_hour" {
  description = "Hourly budget of the service's model spend (CostUsd over every track and route), in USD; the cost alarm fires on an hour above it."
  type        = number
  default     = 10

  validation {
    condition     = var.cost_budget_usd_per_hour > 0 && var.cost_budget_usd_per_hour <= 100000
    error_message = "The cost_budget_usd_per_hour must be more than 0 and at most 100000."
  }
}

variable "alarm_period_seconds" {
  description = "Period, in seconds, of the latency and error-rate alarms (the service pushes its metrics at least this often)."
  type        = number
  default     = 60

  validation {
    condition     = contains([60, 120, 300, 600, 900, 1800, 3600], var.alarm_period_seconds)
    error_message = "The alarm_period_seconds must be one of 60, 120, 300, 600, 900, 1800 or 3600."
  }
}

variable "evaluation_periods" {
  description = "Periods the latency and error-rate alarms look back over."
  type        = number
  default     = 5

  validation {
    condition     = var.evaluation_periods >= 1 && var.evaluation_periods <= 60 && floor(var.evaluation_periods) == var.evaluation_periods
    error_message = "The evaluation_periods must be a whole number from 1 to 60."
  }
}

variable "datapoints_to_alarm" {
  description = "Breaching periods, out of evaluation_periods, that fire the latency and error-rate alarms."
  type        = number
  default     = 3

  validation {
    condition     = var.datapoints_to_alarm >= 1 && var.datapoints_to_alarm <= var.evaluation_periods && floor(var.datapoints_to_alarm) == var.datapoints_to_alarm
    error_message = "The datapoints_to_alarm must be a whole number from 1 to evaluation_periods."
  }
}

variable "alarm_emails" {
  description = "E-mail addresses subscribed to the alarm topic (each must confirm the subscription)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "Each alarm_emails entry must be an e-mail address."
  }
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the Container Insights and service logs; one of the retention periods CloudWatch Logs accepts."
  type        = number
  default     = 7

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "The log_retention_days must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
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
