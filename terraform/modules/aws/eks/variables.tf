variable "name" {
  description = "Name of the EKS cluster; it also prefixes the node groups, launch templates, IAM roles and the KMS alias."
  type        = string
  default     = "inferops"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name))
    error_message = "The name must be 2 to 32 characters of a-z, 0-9 and '-', starting with a letter and ending with a letter or digit."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane and the node groups (for example \"1.33\"); upgrade one minor version at a time."
  type        = string
  default     = "1.33"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "The kubernetes_version must be a minor version such as \"1.33\" (no patch number)."
  }

  validation {
    condition     = try(tonumber(split(".", var.kubernetes_version)[1]) >= 29, false)
    error_message = "The kubernetes_version must be 1.29 or newer: older versions are out of EKS support."
  }
}

variable "support_type" {
  description = "EKS support policy: STANDARD refuses to run a version past its standard support (extended support costs about six times as much per cluster-hour); EXTENDED allows it."
  type        = string
  default     = "STANDARD"

  validation {
    condition     = contains(["STANDARD", "EXTENDED"], var.support_type)
    error_message = "The support_type must be STANDARD or EXTENDED."
  }
}

variable "subnet_ids" {
  description = "Private subnets, in at least two availability zones, for the control-plane network interfaces and the nodes."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2 && alltrue([for id in var.subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", id))])
    error_message = "The subnet_ids must list at least two subnet IDs (subnet-...)."
  }
}

variable "public_access_cidrs" {
  description = "CIDR blocks allowed to reach the public Kubernetes API endpoint. Empty (the default) turns the public endpoint off: the API is then reachable only from inside the VPC."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.public_access_cidrs : can(cidrhost(cidr, 0))])
    error_message = "Each public_access_cidrs entry must be a valid IPv4 CIDR block."
  }

  validation {
    condition     = alltrue([for cidr in var.public_access_cidrs : !endswith(cidr, "/0")])
    error_message = "The public_access_cidrs must not open the API to the whole internet (/0): list the networks that need it."
  }
}

variable "cluster_log_types" {
  description = "Control-plane log types sent to CloudWatch Logs."
  type        = list(string)
  default     = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  validation {
    condition     = alltrue([for t in var.cluster_log_types : contains(["api", "audit", "authenticator", "controllerManager", "scheduler"], t)])
    error_message = "The cluster_log_types may only contain api, audit, authenticator, controllerManager and scheduler."
  }

  validation {
    condition     = contains(var.cluster_log_types, "audit") && contains(var.cluster_log_types, "authenticator")
    error_message = "The cluster_log_types must include at least audit and authenticator: who did what to the cluster must always be recorded."
  }
}

variable "cluster_log_retention_days" {
  description = "Days CloudWatch keeps the control-plane logs; one of the retention periods CloudWatch Logs accepts."
  type        = number
  default     = 7

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.cluster_log_retention_days)
    error_message = "The cluster_log_retention_days must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
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

variable "metadata_hop_limit" {
  description = "Hop limit of the instance metadata service's responses: 1 keeps pods off the node's credentials (they use IRSA); 2 lets pods reach IMDS."
  type        = number
  default     = 1

  validation {
    condition     = contains([1, 2], var.metadata_hop_limit)
    error_message = "The metadata_hop_limit must be 1 or 2."
  }
}

variable "addons" {
  description = "EKS add-ons to manage at their default version for the cluster's Kubernetes version."
  type        = list(string)
  default     = ["vpc-cni", "kube-proxy", "coredns"]

  validation {
    condition     = alltrue([for a in var.addons : can(regex("^[a-z0-9][a-z0-9-]*$", a))]) && length(distinct(var.addons)) == length(var.addons)
    error_message = "The addons must be distinct add-on names such as vpc-cni or coredns."
  }
}

# --- CPU node group (on-demand).

variable "cpu_instance_types" {
  description = "Instance types of the on-demand CPU node group (x86-64; the first one that has capacity is used)."
  type        = list(string)
  default     = ["m5.2xlarge"]

  validation {
    condition     = length(var.cpu_instance_types) >= 1 && length(var.cpu_instance_types) <= 10
    error_message = "The cpu_instance_types must list 1 to 10 instance types."
  }

  validation {
    condition     = alltrue([for t in var.cpu_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t)) && !can(regex("^[a-z]+[0-9]+g[a-z]*\\.", t))])
    error_message = "Each CPU instance type must be an x86-64 type name such as m5.2xlarge (Graviton types such as m7g.large need an ARM AMI)."
  }
}

variable "cpu_ami_type" {
  description = "AMI type of the CPU node group."
  type        = string
  default     = "AL2023_x86_64_STANDARD"

  validation {
    condition     = contains(["AL2023_x86_64_STANDARD", "BOTTLEROCKET_x86_64"], var.cpu_ami_type)
    error_message = "The cpu_ami_type must be AL2023_x86_64_STANDARD or BOTTLEROCKET_x86_64."
  }
}

variable "cpu_disk_size_gib" {
  description = "Root volume size of each CPU node, in GiB (gp3, encrypted)."
  type        = number
  default     = 50

  validation {
    condition     = var.cpu_disk_size_gib >= 20 && var.cpu_disk_size_gib <= 1000 && floor(var.cpu_disk_size_gib) == var.cpu_disk_size_gib
    error_message = "The cpu_disk_size_gib must be a whole number from 20 to 1000."
  }
}

variable "cpu_desired_size" {
  description = "Number of CPU nodes when the group is created (an autoscaler moves it later)."
  type        = number
  default     = 2

  validation {
    condition     = floor(var.cpu_desired_size) == var.cpu_desired_size && var.cpu_desired_size >= var.cpu_min_size && var.cpu_desired_size <= var.cpu_max_size
    error_message = "The cpu_desired_size must be a whole number from cpu_min_size to cpu_max_size."
  }
}

variable "cpu_min_size" {
  description = "Fewest CPU nodes; at least one, since the system add-ons run there."
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

# --- GPU node group (Spot).

variable "gpu_instance_types" {
  description = "Instance types of the Spot GPU node group; several types in several families make Spot capacity easier to get."
  type        = list(string)
  default     = ["g4dn.xlarge", "g5.xlarge"]

  validation {
    condition     = length(var.gpu_instance_types) >= 1 && length(var.gpu_instance_types) <= 10
    error_message = "The gpu_instance_types must list 1 to 10 instance types."
  }

  validation {
    condition     = alltrue([for t in var.gpu_instance_types : can(regex("^(g4dn|g5|g6|g6e|gr6|p3|p3dn|p4d|p4de|p5|p5e|p5en)\\.[0-9]*[a-z]+$", t))])
    error_message = "Each GPU instance type must be an x86-64 NVIDIA type: g4dn, g5, g6, g6e, gr6, p3, p3dn, p4d, p4de, p5, p5e or p5en (for example g5.xlarge)."
  }
}

variable "gpu_ami_type" {
  description = "AMI type of the GPU node group: AL2023_x86_64_NVIDIA (the default; Kubernetes 1.33 and later have no AL2 AMIs) or AL2_x86_64_GPU (Kubernetes 1.32 and older)."
  type        = string
  default     = "AL2023_x86_64_NVIDIA"

  validation {
    condition     = contains(["AL2023_x86_64_NVIDIA", "AL2_x86_64_GPU"], var.gpu_ami_type)
    error_message = "The gpu_ami_type must be AL2023_x86_64_NVIDIA or AL2_x86_64_GPU."
  }

  validation {
    condition     = var.gpu_ami_type != "AL2_x86_64_GPU" || try(tonumber(split(".", var.kubernetes_version)[1]) <= 32, false)
    error_message = "AL2_x86_64_GPU has no AMIs for Kubernetes 1.33 and later: use AL2023_x86_64_NVIDIA."
  }
}

variable "gpu_disk_size_gib" {
  description = "Root volume size of each GPU node, in GiB (gp3, encrypted); model weights and CUDA images are large."
  type        = number
  default     = 100

  validation {
    condition     = var.gpu_disk_size_gib >= 50 && var.gpu_disk_size_gib <= 2000 && floor(var.gpu_disk_size_gib) == var.gpu_disk_size_gib
    error_message = "The gpu_disk_size_gib must be a whole number from 50 to 2000."
  }
}

variable "gpu_desired_size" {
  description = "Number of GPU nodes when the group is created (an autoscaler moves it later)."
  type        = number
  default     = 1

  validation {
    condition     = floor(var.gpu_desired_size) == var.gpu_desired_size && var.gpu_desired_size >= var.gpu_min_size && var.gpu_desired_size <= var.gpu_max_size
    error_message = "The gpu_desired_size must be a whole number from gpu_min_size to gpu_max_size."
  }
}

variable "gpu_min_size" {
  description = "Fewest GPU nodes; 0 lets an autoscaler remove every GPU node when nothing needs one."
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

variable "tags" {
  description = "Tags added to every resource of the module (on top of the provider's default tags)."
  type        = map(string)
  default     = {}
}

variable "node_tags" {
  description = "Tags for the nodes' instances and root volumes; the provider's default tags do not reach them through a launch template, so pass those here too."
  type        = map(string)
  default     = {}
}
