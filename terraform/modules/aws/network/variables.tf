variable "name" {
  description = "Name of the network; it prefixes every resource's Name tag and the flow-log group /aws/vpc/<name>/flow-logs."
  type        = string
  default     = "inferops"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name))
    error_message = "The name must be 2 to 32 characters of a-z, 0-9 and '-', starting with a letter and ending with a letter or digit."
  }
}

variable "cluster_name" {
  description = "Name of the EKS cluster that uses this network; the subnets carry its kubernetes.io/cluster/<name> tag."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9_-]{0,99}$", var.cluster_name))
    error_message = "The cluster_name must be 1 to 100 characters of letters, digits, '-' and '_', starting with a letter or digit (the EKS naming rule)."
  }
}

variable "vpc_cidr" {
  description = "IPv4 range of the VPC, from /16 to /20. The private subnets take one eighth of it each, the public ones a 1/64th each from the last eighth."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && try(tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20, false)
    error_message = "The vpc_cidr must be a valid IPv4 CIDR block with a prefix length from /16 to /20."
  }

  validation {
    condition     = try(cidrhost(var.vpc_cidr, 0) == split("/", var.vpc_cidr)[0], false)
    error_message = "The vpc_cidr must name the network address of its block (for example 10.40.0.0/16, not 10.40.1.0/16)."
  }
}

variable "az_count" {
  description = "How many availability zones to span when availability_zones is empty; each gets a public and a private subnet and its own NAT gateway."
  type        = number
  default     = 3

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 6 && floor(var.az_count) == var.az_count
    error_message = "The az_count must be a whole number from 2 to 6 (EKS needs subnets in at least two zones)."
  }
}

variable "availability_zones" {
  description = "Availability zones to use, by name (for example [\"eu-west-1a\", \"eu-west-1b\", \"eu-west-1c\"]); empty takes the first az_count zones of the region that need no opt-in."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.availability_zones) == 0 || (length(var.availability_zones) >= 2 && length(var.availability_zones) <= 6 && length(distinct(var.availability_zones)) == length(var.availability_zones))
    error_message = "The availability_zones must be empty or list 2 to 6 distinct zones."
  }

  validation {
    condition     = alltrue([for az in var.availability_zones : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+[a-z]$", az))])
    error_message = "Each availability zone must be a zone name such as us-east-1a."
  }
}

variable "flow_log_traffic_type" {
  description = "Which traffic the VPC flow logs record: ALL, ACCEPT or REJECT."
  type        = string
  default     = "ALL"

  validation {
    condition     = contains(["ALL", "ACCEPT", "REJECT"], var.flow_log_traffic_type)
    error_message = "The flow_log_traffic_type must be ALL, ACCEPT or REJECT."
  }
}

variable "flow_log_retention_days" {
  description = "Days CloudWatch keeps the VPC flow logs; one of the retention periods CloudWatch Logs accepts."
  type        = number
  default     = 7

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_log_retention_days)
    error_message = "The flow_log_retention_days must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
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
