variable "name" {
  description = "Prefix of the role names: <name>-service and <name>-pipeline."
  type        = string
  default     = "inferops"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9+=,.@_-]{0,54}$", var.name))
    error_message = "The name must be 1 to 55 characters allowed in IAM role names, starting with a letter."
  }
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider (the eks module's oidc_provider_arn)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$", var.oidc_provider_arn))
    error_message = "The oidc_provider_arn must be an IAM OIDC provider ARN (arn:aws:iam::<account>:oidc-provider/...)."
  }
}

variable "service_account" {
  description = "Kubernetes namespace and name of the inference service's ServiceAccount."
  type = object({
    namespace = string
    name      = string
  })
  default = {
    namespace = "inferops"
    name      = "inference"
  }

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.service_account.namespace)) && can(regex("^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$", var.service_account.name))
    error_message = "The service_account namespace must be a DNS label and its name a DNS subdomain (lowercase a-z, 0-9, '-', '.')."
  }
}

variable "pipeline_service_account" {
  description = "Kubernetes namespace and name of the release pipeline's ServiceAccount."
  type = object({
    namespace = string
    name      = string
  })
  default = {
    namespace = "inferops"
    name      = "pipeline"
  }

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.pipeline_service_account.namespace)) && can(regex("^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$", var.pipeline_service_account.name))
    error_message = "The pipeline_service_account namespace must be a DNS label and its name a DNS subdomain (lowercase a-z, 0-9, '-', '.')."
  }
}

variable "metric_namespace" {
  description = "The one CloudWatch namespace the service may publish metrics to (its telemetry.cloudwatch.namespace)."
  type        = string
  default     = "Inferops/Service"

  validation {
    condition     = length(var.metric_namespace) >= 1 && length(var.metric_namespace) <= 255 && !startswith(var.metric_namespace, "AWS/") && !strcontains(var.metric_namespace, "*")
    error_message = "The metric_namespace must be 1 to 255 characters, without wildcards, and not an AWS/ namespace."
  }
}

variable "ecr_repository_arn" {
  description = "ARN of the ECR repository the pipeline pushes the service image to."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/[a-z0-9._/-]+$", var.ecr_repository_arn))
    error_message = "The ecr_repository_arn must be the ARN of one ECR repository (no wildcards)."
  }
}

variable "cluster_arn" {
  description = "ARN of the EKS cluster the pipeline may describe (to write its kubeconfig)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:eks:[a-z0-9-]+:[0-9]{12}:cluster/[a-zA-Z0-9_-]+$", var.cluster_arn))
    error_message = "The cluster_arn must be the ARN of one EKS cluster (no wildcards)."
  }
}

variable "alarm_name_prefix" {
  description = "Prefix of the CloudWatch alarms the pipeline may create, tune and delete (the observability module names its alarms <name>-...)."
  type        = string

  validation {
    condition     = length(var.alarm_name_prefix) >= 3 && !strcontains(var.alarm_name_prefix, "*") && !strcontains(var.alarm_name_prefix, "?")
    error_message = "The alarm_name_prefix must be at least 3 characters and contain no wildcards, so that it cannot match every alarm."
  }
}

variable "tags" {
  description = "Tags added to every resource of the module (on top of the provider's default tags)."
  type        = map(string)
  default     = {}
}
