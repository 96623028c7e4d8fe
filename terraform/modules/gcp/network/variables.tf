variable "project_id" {
  description = "ID of the Google Cloud project that holds the network."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "The project_id must be a Google Cloud project ID: 6 to 30 characters, lowercase letters, digits and '-', starting with a letter."
  }
}

variable "region" {
  description = "Region of the subnet, the Cloud Router and the Cloud NAT gateway (for example us-central1)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "The region must be a Google Cloud region name such as us-central1 or europe-west4 (not a zone)."
  }
}

variable "name" {
  description = "Name of the VPC; it also prefixes the subnet, router, NAT gateway and firewall rules."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name))
    error_message = "The name must be 3 to 40 characters: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit."
  }
}

variable "nodes_cidr" {
  description = "Primary range of the subnet, from which nodes (and internal load balancers) get their addresses."
  type        = string
  default     = "10.10.0.0/20"

  validation {
    condition     = can(cidrhost(var.nodes_cidr, 0)) && tonumber(split("/", var.nodes_cidr)[1]) >= 8 && tonumber(split("/", var.nodes_cidr)[1]) <= 29
    error_message = "The nodes_cidr must be an IPv4 CIDR block from /8 to /29."
  }
}

variable "pods_cidr" {
  description = "Secondary range for pod addresses (VPC-native cluster). A /14 holds about 1000 nodes at 110 pods each."
  type        = string
  default     = "10.20.0.0/14"

  validation {
    condition     = can(cidrhost(var.pods_cidr, 0)) && tonumber(split("/", var.pods_cidr)[1]) >= 9 && tonumber(split("/", var.pods_cidr)[1]) <= 21
    error_message = "The pods_cidr must be an IPv4 CIDR block from /9 to /21."
  }
}

variable "services_cidr" {
  description = "Secondary range for Kubernetes Service (ClusterIP) addresses."
  type        = string
  default     = "10.24.0.0/20"

  validation {
    condition     = can(cidrhost(var.services_cidr, 0)) && tonumber(split("/", var.services_cidr)[1]) >= 16 && tonumber(split("/", var.services_cidr)[1]) <= 27
    error_message = "The services_cidr must be an IPv4 CIDR block from /16 to /27."
  }
}

variable "pods_range_name" {
  description = "Name of the secondary range for pods, as the cluster's ip_allocation_policy refers to it."
  type        = string
  default     = "pods"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.pods_range_name))
    error_message = "The pods_range_name must be a lowercase RFC 1035 name of 1 to 63 characters."
  }
}

variable "services_range_name" {
  description = "Name of the secondary range for services, as the cluster's ip_allocation_policy refers to it."
  type        = string
  default     = "services"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.services_range_name))
    error_message = "The services_range_name must be a lowercase RFC 1035 name of 1 to 63 characters."
  }
}

variable "flow_logs_aggregation_interval" {
  description = "How long VPC flow logs aggregate a connection's packets before writing an entry; longer intervals write (and cost) less."
  type        = string
  default     = "INTERVAL_5_SEC"

  validation {
    condition     = contains(["INTERVAL_5_SEC", "INTERVAL_30_SEC", "INTERVAL_1_MIN", "INTERVAL_5_MIN", "INTERVAL_10_MIN", "INTERVAL_15_MIN"], var.flow_logs_aggregation_interval)
    error_message = "The flow_logs_aggregation_interval must be one of INTERVAL_5_SEC, INTERVAL_30_SEC, INTERVAL_1_MIN, INTERVAL_5_MIN, INTERVAL_10_MIN, INTERVAL_15_MIN."
  }
}

variable "flow_logs_sampling" {
  description = "Fraction of flows that VPC flow logs record, from 0 (exclusive) to 1."
  type        = number
  default     = 0.5

  validation {
    condition     = var.flow_logs_sampling > 0 && var.flow_logs_sampling <= 1
    error_message = "The flow_logs_sampling must be greater than 0 and at most 1."
  }
}

variable "nat_static_ip_count" {
  description = "Number of reserved external addresses for Cloud NAT; 0 lets Cloud NAT allocate addresses automatically."
  type        = number
  default     = 0

  validation {
    condition     = var.nat_static_ip_count >= 0 && var.nat_static_ip_count <= 8 && floor(var.nat_static_ip_count) == var.nat_static_ip_count
    error_message = "The nat_static_ip_count must be a whole number from 0 to 8."
  }
}

variable "nat_min_ports_per_vm" {
  description = "Minimum Cloud NAT source ports per VM (dynamic port allocation grows it up to nat_max_ports_per_vm)."
  type        = number
  default     = 64

  validation {
    condition     = contains([32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768], var.nat_min_ports_per_vm)
    error_message = "The nat_min_ports_per_vm must be a power of two from 32 to 32768."
  }
}

variable "nat_max_ports_per_vm" {
  description = "Maximum Cloud NAT source ports per VM under dynamic port allocation."
  type        = number
  default     = 4096

  validation {
    condition     = contains([64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536], var.nat_max_ports_per_vm) && var.nat_max_ports_per_vm > var.nat_min_ports_per_vm
    error_message = "The nat_max_ports_per_vm must be a power of two from 64 to 65536 and greater than nat_min_ports_per_vm."
  }
}

variable "allow_iap_ssh" {
  description = "Allow SSH to the nodes from Identity-Aware Proxy TCP forwarding (35.235.240.0/20); off by default."
  type        = bool
  default     = false
}
