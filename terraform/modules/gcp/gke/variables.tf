variable "project_id" {
  description = "ID of the Google Cloud project that holds the cluster."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "The project_id must be a Google Cloud project ID: 6 to 30 characters, lowercase letters, digits and '-', starting with a letter."
  }
}

variable "region" {
  description = "Region of the (regional) cluster, its node pools and its KMS key ring, for example us-central1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "The region must be a Google Cloud region name such as us-central1 or europe-west4 (not a zone): the cluster is regional."
  }
}

variable "name" {
  description = "Name of the cluster; it also prefixes the node service account and the KMS key ring."
  type        = string

  validation {
    # 20 characters at most, so that "<name>-gke-nodes" fits the 30-character
    # limit of service account IDs.
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "The name must be 3 to 20 characters: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit."
  }
}

variable "network" {
  description = "ID or self link of the VPC the cluster joins."
  type        = string

  validation {
    condition     = length(var.network) > 0
    error_message = "The network must not be empty."
  }
}

variable "subnetwork" {
  description = "ID or self link of the subnet the nodes use; it must carry the pods and services secondary ranges."
  type        = string

  validation {
    condition     = length(var.subnetwork) > 0
    error_message = "The subnetwork must not be empty."
  }
}

variable "pods_range_name" {
  description = "Name of the subnet's secondary range for pod addresses."
  type        = string
  default     = "pods"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.pods_range_name))
    error_message = "The pods_range_name must be a lowercase RFC 1035 name of 1 to 63 characters."
  }
}

variable "services_range_name" {
  description = "Name of the subnet's secondary range for service addresses."
  type        = string
  default     = "services"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.services_range_name))
    error_message = "The services_range_name must be a lowercase RFC 1035 name of 1 to 63 characters."
  }
}

variable "zones" {
  description = "Zones of the region that hold nodes (for example [\"us-central1-a\", \"us-central1-b\", \"us-central1-c\"]); empty lets GKE choose its default zones. Every pool runs its per-zone node counts in each of them."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for zone in var.zones : startswith(zone, "${var.region}-") && can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", zone))]) && length(distinct(var.zones)) == length(var.zones)
    error_message = "Each of the zones must be a distinct zone of the cluster's region, such as <region>-a."
  }
}

variable "gpu_zones" {
  description = "Zones of the GPU pool when they differ from the cluster's (the accelerator must be offered in each of them); empty follows zones."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for zone in var.gpu_zones : startswith(zone, "${var.region}-") && can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", zone))]) && length(distinct(var.gpu_zones)) == length(var.gpu_zones)
    error_message = "Each of the gpu_zones must be a distinct zone of the cluster's region, such as <region>-a."
  }
}

variable "release_channel" {
  description = "GKE release channel, which decides how soon the control plane and nodes are upgraded."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE", "EXTENDED"], var.release_channel)
    error_message = "The release_channel must be one of RAPID, REGULAR, STABLE, EXTENDED."
  }
}

variable "min_master_version" {
  description = "Minimum Kubernetes version of the control plane (for example \"1.31\"); null takes the channel's default. GKE still upgrades past it."
  type        = string
  default     = null

  validation {
    condition     = var.min_master_version == null || can(regex("^1\\.[0-9]+(\\.[0-9]+(-gke\\.[0-9]+)?)?$", var.min_master_version))
    error_message = "The min_master_version must look like 1.31, 1.31.4 or 1.31.4-gke.1000000."
  }
}

variable "enable_private_endpoint" {
  description = "Serve the Kubernetes API on its private address only; then kubectl must run from inside the VPC (or a peered network)."
  type        = bool
  default     = false
}

variable "master_ipv4_cidr_block" {
  description = "/28 range for the control plane's private endpoint; it must not overlap any range of the VPC."
  type        = string
  default     = "172.16.0.0/28"

  validation {
    condition     = can(cidrhost(var.master_ipv4_cidr_block, 0)) && endswith(var.master_ipv4_cidr_block, "/28")
    error_message = "The master_ipv4_cidr_block must be an IPv4 /28 CIDR block."
  }
}

variable "master_global_access" {
  description = "Let clients in other regions of the VPC reach the control plane's private endpoint."
  type        = bool
  default     = false
}

variable "master_authorized_networks" {
  description = "Networks allowed to reach the Kubernetes API (for example the CI runners' egress range); empty allows only the VPC."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  default = []

  validation {
    condition     = alltrue([for network in var.master_authorized_networks : can(cidrhost(network.cidr_block, 0)) && !endswith(network.cidr_block, "/0")])
    error_message = "Each master authorized network must be a valid IPv4 CIDR block, and not /0 (the whole internet)."
  }
}

variable "rbac_security_group" {
  description = "Google Group (gke-security-groups@YOUR-DOMAIN) whose member groups can be bound in Kubernetes RBAC; null disables Google Groups for RBAC."
  type        = string
  default     = null

  validation {
    condition     = var.rbac_security_group == null || can(regex("^gke-security-groups@[a-z0-9.-]+\\.[a-z]+$", var.rbac_security_group))
    error_message = "The rbac_security_group must be gke-security-groups@<your domain>."
  }
}

variable "logging_components" {
  description = "GKE components whose logs go to Cloud Logging."
  type        = list(string)
  default     = ["SYSTEM_COMPONENTS", "WORKLOADS"]

  validation {
    condition     = contains(var.logging_components, "SYSTEM_COMPONENTS") && alltrue([for component in var.logging_components : contains(["SYSTEM_COMPONENTS", "WORKLOADS", "APISERVER", "CONTROLLER_MANAGER", "SCHEDULER"], component)])
    error_message = "The logging_components must include SYSTEM_COMPONENTS and may add WORKLOADS, APISERVER, CONTROLLER_MANAGER, SCHEDULER."
  }
}

variable "monitoring_components" {
  description = "GKE components whose metrics go to Cloud Monitoring (workload metrics come through Managed Prometheus)."
  type        = list(string)
  default     = ["SYSTEM_COMPONENTS"]

  validation {
    condition     = contains(var.monitoring_components, "SYSTEM_COMPONENTS") && alltrue([for component in var.monitoring_components : contains(["SYSTEM_COMPONENTS", "APISERVER", "SCHEDULER", "CONTROLLER_MANAGER", "STORAGE", "HPA", "POD", "DAEMONSET", "DEPLOYMENT", "STATEFULSET", "KUBELET", "CADVISOR", "DCGM"], component)])
    error_message = "The monitoring_components must include SYSTEM_COMPONENTS and may add APISERVER, SCHEDULER, CONTROLLER_MANAGER, STORAGE, HPA, POD, DAEMONSET, DEPLOYMENT, STATEFULSET, KUBELET, CADVISOR, DCGM."
  }
}

variable "managed_prometheus" {
  description = "Enable Google Cloud Managed Service for Prometheus, which collects workload metrics (PodMonitoring resources)."
  type        = bool
  default     = true
}

variable "maintenance_start_time" {
  description = "Start (HH:MM, UTC) of the daily four-hour window in which GKE may upgrade the cluster."
  type        = string
  default     = "03:00"

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]$", var.maintenance_start_time))
    error_message = "The maintenance_start_time must be a 24-hour time HH:MM, such as 03:00."
  }
}

variable "deletion_protection" {
  description = "Refuse to destroy the cluster; set to false (and apply) before destroying the environment."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels added to the cluster, its nodes and its KMS key (cost reports group by them)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key, value in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", key)) && can(regex("^[a-z0-9_-]{0,63}$", value))])
    error_message = "Label keys must start with a lowercase letter and both keys and values may hold only lowercase letters, digits, '_' and '-' (63 characters at most)."
  }
}

variable "kms_rotation_period" {
  description = "How often Cloud KMS rotates the secrets encryption key, in seconds with an 's' suffix (at most 90 days)."
  type        = string
  default     = "7776000s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.kms_rotation_period)) && try(tonumber(trimsuffix(var.kms_rotation_period, "s")) >= 86400 && tonumber(trimsuffix(var.kms_rotation_period, "s")) <= 7776000, false)
    error_message = "The kms_rotation_period must be from 86400s (1 day) to 7776000s (90 days)."
  }
}

variable "kms_destroy_scheduled_duration" {
  description = "How long a destroyed key version stays recoverable before Cloud KMS destroys it, in seconds with an 's' suffix."
  type        = string
  default     = "2592000s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.kms_destroy_scheduled_duration)) && try(tonumber(trimsuffix(var.kms_destroy_scheduled_duration, "s")) >= 86400 && tonumber(trimsuffix(var.kms_destroy_scheduled_duration, "s")) <= 10368000, false)
    error_message = "The kms_destroy_scheduled_duration must be from 86400s (1 day) to 10368000s (120 days)."
  }
}

variable "kms_protection_level" {
  description = "Protection level of the secrets encryption key: SOFTWARE, or HSM (dearer, FIPS 140-2 level 3)."
  type        = string
  default     = "SOFTWARE"

  validation {
    condition     = contains(["SOFTWARE", "HSM"], var.kms_protection_level)
    error_message = "The kms_protection_level must be SOFTWARE or HSM."
  }
}

variable "node_service_account_roles" {
  description = "Project roles of the nodes' service account: what GKE nodes need to write logs and metrics and to serve the autoscalers."
  type        = list(string)
  default = [
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/autoscaling.metricsWriter",
  ]

  validation {
    condition     = alltrue([for role in var.node_service_account_roles : startswith(role, "roles/") && !contains(["roles/owner", "roles/editor", "roles/viewer"], role)])
    error_message = "Each node service account role must be a predefined or custom role (roles/...), never a basic role (owner, editor, viewer)."
  }
}

variable "default_pool_machine_type" {
  description = "Machine type of the general-purpose pool (system pods, the router, load generators)."
  type        = string
  default     = "n2-standard-4"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-(standard|highmem|highcpu)-[0-9]+$", var.default_pool_machine_type))
    error_message = "The default_pool_machine_type must be a predefined machine type such as n2-standard-4 or e2-highmem-8."
  }
}

variable "default_pool_min_nodes" {
  description = "Minimum nodes per zone of the general-purpose pool (a regional pool has this many in each zone)."
  type        = number
  default     = 1

  validation {
    condition     = var.default_pool_min_nodes >= 0 && var.default_pool_min_nodes <= 100 && floor(var.default_pool_min_nodes) == var.default_pool_min_nodes
    error_message = "The default_pool_min_nodes must be a whole number from 0 to 100."
  }
}

variable "default_pool_max_nodes" {
  description = "Maximum nodes per zone of the general-purpose pool."
  type        = number
  default     = 3

  validation {
    condition     = var.default_pool_max_nodes >= 1 && var.default_pool_max_nodes <= 100 && floor(var.default_pool_max_nodes) == var.default_pool_max_nodes && var.default_pool_max_nodes >= var.default_pool_min_nodes
    error_message = "The default_pool_max_nodes must be a whole number from 1 to 100, and at least default_pool_min_nodes."
  }
}

variable "default_pool_disk_size_gb" {
  description = "Boot disk size (GB, pd-balanced) of each general-purpose node."
  type        = number
  default     = 100

  validation {
    condition     = var.default_pool_disk_size_gb >= 20 && var.default_pool_disk_size_gb <= 2000 && floor(var.default_pool_disk_size_gb) == var.default_pool_disk_size_gb
    error_message = "The default_pool_disk_size_gb must be a whole number from 20 to 2000."
  }
}

variable "gpu_accelerator_type" {
  description = "GPU of the GPU pool: nvidia-tesla-t4 (on N1 machines) or nvidia-l4 (on G2 machines)."
  type        = string
  default     = "nvidia-tesla-t4"

  validation {
    condition     = contains(["nvidia-tesla-t4", "nvidia-l4"], var.gpu_accelerator_type)
    error_message = "The gpu_accelerator_type must be nvidia-tesla-t4 or nvidia-l4."
  }
}

variable "gpu_machine_type" {
  description = "Machine type of the GPU pool; null picks n1-standard-4 for T4 and g2-standard-4 for L4. T4 needs n1-standard-*, L4 needs g2-standard-*."
  type        = string
  default     = null

  validation {
    condition = var.gpu_machine_type == null || (
      var.gpu_accelerator_type == "nvidia-l4"
      ? can(regex("^g2-standard-(4|8|12|16|24|32|48|96)$", var.gpu_machine_type))
      : can(regex("^n1-standard-(1|2|4|8|16|32|64|96)$", var.gpu_machine_type))
    )
    error_message = "The gpu_machine_type does not fit the accelerator: nvidia-tesla-t4 runs on n1-standard-N (N = 1 to 96), nvidia-l4 on g2-standard-N (N = 4, 8, 12, 16, 24, 32, 48 or 96)."
  }
}

variable "gpu_count" {
  description = "GPUs per node. T4: 1, 2 or 4 (more than 48 vCPUs needs 4). L4: fixed by the machine type (1 up to g2-standard-32 except g2-standard-24 with 2; 4 on g2-standard-48; 8 on g2-standard-96)."
  type        = number
  default     = 1

  validation {
    condition = (
      var.gpu_accelerator_type == "nvidia-l4"
      ? try(var.gpu_count == lookup({ "4" = 1, "8" = 1, "12" = 1, "16" = 1, "24" = 2, "32" = 1, "48" = 4, "96" = 8 }, split("-", coalesce(var.gpu_machine_type, "g2-standard-4"))[2], 0), false)
      : contains([1, 2, 4], var.gpu_count) && try(var.gpu_count == 4 || tonumber(split("-", coalesce(var.gpu_machine_type, "n1-standard-4"))[2]) <= 48, false)
    )
    error_message = "The gpu_count does not fit the machine type: T4 takes 1, 2 or 4 GPUs (4 when the machine has more than 48 vCPUs); an L4 machine takes exactly its fixed GPU count (g2-standard-4 to -32: 1, g2-standard-24: 2, g2-standard-48: 4, g2-standard-96: 8)."
  }
}

variable "gpu_pool_min_nodes" {
  description = "Minimum GPU nodes per zone; 0 lets the pool scale to zero when no GPU workload runs."
  type        = number
  default     = 0

  validation {
    condition     = var.gpu_pool_min_nodes >= 0 && var.gpu_pool_min_nodes <= 50 && floor(var.gpu_pool_min_nodes) == var.gpu_pool_min_nodes
    error_message = "The gpu_pool_min_nodes must be a whole number from 0 to 50."
  }
}

variable "gpu_pool_max_nodes" {
  description = "Maximum GPU nodes per zone (mind the project's GPU quota in the region)."
  type        = number
  default     = 2

  validation {
    condition     = var.gpu_pool_max_nodes >= 1 && var.gpu_pool_max_nodes <= 50 && floor(var.gpu_pool_max_nodes) == var.gpu_pool_max_nodes && var.gpu_pool_max_nodes >= var.gpu_pool_min_nodes
    error_message = "The gpu_pool_max_nodes must be a whole number from 1 to 50, and at least gpu_pool_min_nodes."
  }
}

variable "gpu_pool_disk_size_gb" {
  description = "Boot disk size (GB, pd-balanced) of each GPU node; model images are large."
  type        = number
  default     = 200

  validation {
    condition     = var.gpu_pool_disk_size_gb >= 50 && var.gpu_pool_disk_size_gb <= 2000 && floor(var.gpu_pool_disk_size_gb) == var.gpu_pool_disk_size_gb
    error_message = "The gpu_pool_disk_size_gb must be a whole number from 50 to 2000."
  }
}

variable "gpu_spot" {
  description = "Run GPU nodes as Spot VMs (much cheaper, may be preempted at any time)."
  type        = bool
  default     = true
}
