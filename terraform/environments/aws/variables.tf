# --- Passed by the pipeline to every environment.

# The pipeline passes environment and state_dir to every environment it
# provisions. This one keeps its state in the S3 backend and names its resources
# with var.name, so it accepts both and uses neither.
variable "environment" {
  description = "Name of the environment, as the pipeline calls it. Accepted for a uniform interface; not used here (var.name names the resources)."
  type        = string
  default     = "aws"
}

variable "state_dir" {
  description = "The pipeline's state folder for this environment. Accepted for a uniform interface; not used here (the state lives in the S3 backend)."
  type        = string
  default     = ""
}

# --- Placement and naming.

variable "region" {
  description = "AWS region of the environment (for example us-east-1)."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "The region must be an AWS region name such as us-east-1 or eu-west-3."
  }
}

variable "name" {
  description = "Name of the deployment: the EKS cluster's name and the prefix of the VPC, roles (<name>-service, <name>-pipeline), alarms, topic and dashboard."
  type        = string
  default     = "inferops"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name))
    error_message = "The name must be 2 to 32 characters of a-z, 0-9 and '-', starting with a letter and ending with a letter or digit."
  }
}

variable "tags" {
  description = "Tags added to every resource (through the provider's default tags) and to the nodes' instances and volumes."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.tags) : length(k) >= 1 && length(k) <= 128 && !startswith(lower(k), "aws:")])
    error_message = "Tag keys must be 1 to 128 characters and must not start with aws:."
  }
}

# --- Network.

variable "vpc_cidr" {
  description = "IPv4 range of the VPC, from /16 to /20."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && try(tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20, false)
    error_message = "The vpc_cidr must be a valid IPv4 CIDR block with a prefix length from /16 to /20."
  }
}

variable "availability_zones" {
  description = "Availability zones to span, by name; empty takes the region's first three zones (one NAT gateway each)."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.availability_zones) == 0 || (length(var.availability_zones) >= 2 && length(var.availability_zones) <= 6 && length(distinct(var.availability_zones)) == length(var.availability_zones))
    error_message = "The availability_zones must be empty or list 2 to 6 distinct zones."
  }
}

# --- Cluster.

variable "kubernetes_version" {
  description = "Kubernetes minor version of the EKS control plane and node groups (for example \"1.33\"); upgrade one minor version at a time."
  type        = string
  default     = "1.33"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version)) && try(tonumber(split(".", var.kubernetes_version)[1]) >= 29, false)
    error_message = "The kubernetes_version must be a supported minor version such as \"1.33\" (1.29 or newer, no patch number)."
  }
}

variable "public_access_cidrs" {
  description = "CIDR blocks that may reach the public Kubernetes API endpoint; empty (the default) keeps the API private to the VPC."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.public_access_cidrs : can(cidrhost(cidr, 0)) && !endswith(cidr, "/0")])
    error_message = "Each public_access_cidrs entry must be a valid IPv4 CIDR block narrower than /0."
  }
}

variable "cpu_instance_types" {
  description = "Instance types of the on-demand CPU node group (x86-64)."
  type        = list(string)
  default     = ["m5.2xlarge"]

  validation {
    condition     = length(var.cpu_instance_types) >= 1 && length(var.cpu_instance_types) <= 10 && alltrue([for t in var.cpu_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t)) && !can(regex("^[a-z]+[0-9]+g[a-z]*\\.", t))])
    error_message = "The cpu_instance_types must list 1 to 10 x86-64 instance types such as m5.2xlarge."
  }
}

variable "cpu_desired_size" {
  description = "Number of CPU nodes at creation."
  type        = number
  default     = 2

  validation {
    condition     = floor(var.cpu_desired_size) == var.cpu_desired_size && var.cpu_desired_size >= var.cpu_min_size && var.cpu_desired_size <= var.cpu_max_size
    error_message = "The cpu_desired_size must be a whole number from cpu_min_size to cpu_max_size."
  }
}

variable "cpu_min_size" {
  description = "Fewest CPU nodes (at least 1: the system add-ons run there)."
  type        = number
  default     = 2

  validation {
    condition     = var.cpu_min_size >= 1 && floor(var.cpu_min_size) == var.cpu_min_size
    error_message = "The cpu_min_size must be a whole number of at least 1."
  }
}

variable "cpu_max_size" {
  description = "Most CPU nodes."
  type        = number
  default     = 5

  validation {
    condition     = floor(var.cpu_max_size) == var.cpu_max_size && var.cpu_max_size >= var.cpu_min_size && var.cpu_max_size <= 100
    error_message = "The cpu_max_size must be a whole number from cpu_min_size to 100."
  }
}

variable "gpu_instance_types" {
  description = "Instance types of the Spot GPU node group (x86-64 NVIDIA types)."
  type        = list(string)
  default     = ["g4dn.xlarge", "g5.xlarge"]

  validation {
    condition     = length(var.gpu_instance_types) >= 1 && length(var.gpu_instance_types) <= 10 && alltrue([for t in var.gpu_instance_types : can(regex("^(g4dn|g5|g6|g6e|gr6|p3|p3dn|p4d|p4de|p5|p5e|p5en)\\.[0-9]*[a-z]+$", t))])
    error_message = "The gpu_instance_types must list 1 to 10 x86-64 NVIDIA types: g4dn, g5, g6, g6e, gr6, p3, p3dn, p4d, p4de, p5, p5e or p5en."
  }
}

variable "gpu_desired_size" {
  description = "Number of GPU nodes at creation."
  type        = number
  default     = 1

  validation {
    condition     = floor(var.gpu_desired_size) == var.gpu_desired_size && var.gpu_desired_size >= var.gpu_min_size && var.gpu_desired_size <= var.gpu_max_size
    error_message = "The gpu_desired_size must be a whole number from gpu_min_size to gpu_max_size."
  }
}

variable "gpu_min_size" {
  description = "Fewest GPU nodes (0 lets an autoscaler remove them all when idle)."
  type        = number
  default     = 0

  validation {
    condition     = var.gpu_min_size >= 0 && floor(var.gpu_min_size) == var.gpu_min_size
    error_message = "The gpu_min_size must be a whole number of at least 0."
  }
}

variable "gpu_max_size" {
  description = "Most GPU nodes; this bounds the GPU spend."
  type        = number
  default     = 4

  validation {
    condition     = floor(var.gpu_max_size) == var.gpu_max_size && var.gpu_max_size >= 1 && var.gpu_max_size >= var.gpu_min_size && var.gpu_max_size <= 50
    error_message = "The gpu_max_size must be a whole number from max(1, gpu_min_size) to 50."
  }
}

variable "kubernetes_namespace" {
  description = "Kubernetes namespace of the service's (inference) and the pipeline's (pipeline) ServiceAccounts, which the IRSA roles trust."
  type        = string
  default     = "inferops"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.kubernetes_namespace))
    error_message = "The kubernetes_namespace must be a DNS label: a-z, 0-9 and '-', 1 to 63 characters."
  }
}

# --- Registry.

variable "ecr_repository_name" {
  description = "Name of the ECR repository of the service image."
  type        = string
  default     = "inferops/service"

  validation {
    condition     = can(regex("^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$", var.ecr_repository_name))
    error_message = "The ecr_repository_name must be lowercase letters and digits, with '.', '_', '-' or '/' between them."
  }
}

# --- Observability.

variable "metric_namespace" {
  description = "CloudWatch namespace of the service's metrics (its telemetry.cloudwatch.namespace); the service role may publish only there."
  type        = string
  default     = "Inferops/Service"

  validation {
    condition     = length(var.metric_namespace) >= 1 && length(var.metric_namespace) <= 255 && !startswith(var.metric_namespace, "AWS/") && can(regex("^[A-Za-z0-9/_.#:-]+$", var.metric_namespace))
    error_message = "The metric_namespace must be 1 to 255 characters of letters, digits and / _ . # : -, and not an AWS/ namespace."
  }
}

variable "model" {
  description = "Model id the service serves (the Model dimension of its metrics)."
  type        = string
  default     = "sim-llama-3-8b"

  validation {
    condition     = length(var.model) >= 1 && length(var.model) <= 255 && !strcontains(var.model, "\"") && !strcontains(var.model, "'")
    error_message = "The model must be 1 to 255 characters without quotes."
  }
}

variable "tracks" {
  description = "Service version each alarmed track runs, by track (stable, canary): the Version and Track dimensions the alarms watch."
  type        = map(string)
  default     = { stable = "unknown" }

  validation {
    condition     = length(var.tracks) >= 1 && alltrue([for t in keys(var.tracks) : contains(["stable", "canary"], t)])
    error_message = "The tracks must name stable, canary or both."
  }
}

variable "latency_p95_threshold_seconds" {
  description = "p95 request latency, in seconds, that fires a track's latency alarm (the SLO's latency_p95_s)."
  type        = number
  default     = 2.0

  validation {
    condition     = var.latency_p95_threshold_seconds > 0 && var.latency_p95_threshold_seconds <= 600
    error_message = "The latency_p95_threshold_seconds must be more than 0 and at most 600."
  }
}

variable "error_rate_threshold_percent" {
  description = "Percentage of 5xx answers that fires a track's error-rate alarm."
  type        = number
  default     = 1

  validation {
    condition     = var.error_rate_threshold_percent > 0 && var.error_rate_threshold_percent < 100
    error_message = "The error_rate_threshold_percent must be more than 0 and less than 100."
  }
}

variable "cost_budget_usd_per_hour" {
  description = "Hourly budget of the service's model spend (its CostUsd metric), in USD; an hour above it fires the cost alarm."
  type        = number
  default     = 10

  validation {
    condition     = var.cost_budget_usd_per_hour > 0 && var.cost_budget_usd_per_hour <= 100000
    error_message = "The cost_budget_usd_per_hour must be more than 0 and at most 100000."
  }
}

variable "alarm_emails" {
  description = "E-mail addresses subscribed to the alarm topic."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "Each alarm_emails entry must be an e-mail address."
  }
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps every log group of the environment (service, Container Insights, control plane, flow logs)."
  type        = number
  default     = 7

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "The log_retention_days must be one of the periods CloudWatch Logs accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}
