# Passed by the pipeline to every environment. This environment keeps its
# state in GCS and names its resources after var.name, so both are accepted
# and ignored; they are declared only so that passing them is valid.
variable "environment" {
  description = "Name of the pipeline environment (passed by the pipeline to every environment; not used here)."
  type        = string
  default     = "gcp"
}

variable "state_dir" {
  description = "Local state folder of the pipeline environment (passed by the pipeline to every environment; not used here: the state lives in GCS)."
  type        = string
  default     = ""
}

variable "project_id" {
  description = "ID of the Google Cloud project to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "The project_id must be a Google Cloud project ID: 6 to 30 characters, lowercase letters, digits and '-', starting with a letter."
  }
}

variable "region" {
  description = "Region of the cluster, network, registry and KMS key; pick one that offers the chosen GPU (T4 or L4)."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "The region must be a Google Cloud region name such as us-central1 or europe-west4 (not a zone)."
  }
}

variable "name" {
  description = "Name of the environment's resources: cluster, VPC, service accounts (<name>-inference, <name>-pipeline), display names."
  type        = string
  default     = "inferops"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "The name must be 3 to 20 characters: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit."
  }
}

variable "enable_apis" {
  description = "Enable the Google Cloud APIs the environment uses (they stay enabled on destroy)."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Labels added to every labelled resource (cost reports group by them)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key, value in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", key)) && can(regex("^[a-z0-9_-]{0,63}$", value))])
    error_message = "Label keys must start with a lowercase letter and both keys and values may hold only lowercase letters, digits, '_' and '-' (63 characters at most)."
  }
}

variable "zones" {
  description = "Zones of the node pools; empty takes the region's first three zones. Each pool's per-zone node counts apply in every zone."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for zone in var.zones : startswith(zone, "${var.region}-")]) && length(distinct(var.zones)) == length(var.zones)
    error_message = "Each of the zones must be a distinct zone of the region, such as <region>-a."
  }
}

variable "gpu_zones" {
  description = "Zones of the GPU pool when the accelerator is not offered in all of zones; empty follows zones."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for zone in var.gpu_zones : startswith(zone, "${var.region}-")]) && length(distinct(var.gpu_zones)) == length(var.gpu_zones)
    error_message = "Each of the gpu_zones must be a distinct zone of the region, such as <region>-a."
  }
}

variable "nodes_cidr" {
  description = "Primary range of the cluster subnet (node addresses)."
  type        = string
  default     = "10.10.0.0/20"

  validation {
    condition     = can(cidrhost(var.nodes_cidr, 0))
    error_message = "The nodes_cidr must be an IPv4 CIDR block."
  }
}

variable "pods_cidr" {
  description = "Secondary range for pod addresses."
  type        = string
  default     = "10.20.0.0/14"

  validation {
    condition     = can(cidrhost(var.pods_cidr, 0))
    error_message = "The pods_cidr must be an IPv4 CIDR block."
  }
}

variable "services_cidr" {
  description = "Secondary range for Kubernetes Service addresses."
  type        = string
  default     = "10.24.0.0/20"

  validation {
    condition     = can(cidrhost(var.services_cidr, 0))
    error_message = "The services_cidr must be an IPv4 CIDR block."
  }
}

variable "master_ipv4_cidr_block" {
  description = "/28 range of the control plane's private endpoint; it must not overlap the VPC's ranges."
  type        = string
  default     = "172.16.0.0/28"

  validation {
    condition     = can(cidrhost(var.master_ipv4_cidr_block, 0)) && endswith(var.master_ipv4_cidr_block, "/28")
    error_message = "The master_ipv4_cidr_block must be an IPv4 /28 CIDR block."
  }
}

variable "nat_static_ip_count" {
  description = "Reserved egress addresses of Cloud NAT (for outside allow-lists); 0 lets Cloud NAT allocate them."
  type        = number
  default     = 0

  validation {
    condition     = var.nat_static_ip_count >= 0 && var.nat_static_ip_count <= 8 && floor(var.nat_static_ip_count) == var.nat_static_ip_count
    error_message = "The nat_static_ip_count must be a whole number from 0 to 8."
  }
}

variable "release_channel" {
  description = "GKE release channel."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE", "EXTENDED"], var.release_channel)
    error_message = "The release_channel must be one of RAPID, REGULAR, STABLE, EXTENDED."
  }
}

variable "min_master_version" {
  description = "Minimum Kubernetes version of the control plane (for example \"1.31\"); null takes the channel's default."
  type        = string
  default     = null

  validation {
    condition     = var.min_master_version == null || can(regex("^1\\.[0-9]+(\\.[0-9]+(-gke\\.[0-9]+)?)?$", var.min_master_version))
    error_message = "The min_master_version must look like 1.31, 1.31.4 or 1.31.4-gke.1000000."
  }
}

variable "enable_private_endpoint" {
  description = "Serve the Kubernetes API on its private address only (kubectl then runs from inside the VPC)."
  type        = bool
  default     = false
}

variable "master_authorized_networks" {
  description = "Networks allowed to reach the Kubernetes API, such as the pipeline runner's egress range; empty allows only the VPC."
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

variable "deletion_protection" {
  description = "Refuse to destroy the cluster; set to false and apply before destroying the environment."
  type        = bool
  default     = true
}

variable "default_pool_machine_type" {
  description = "Machine type of the general-purpose node pool."
  type        = string
  default     = "n2-standard-4"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-(standard|highmem|highcpu)-[0-9]+$", var.default_pool_machine_type))
    error_message = "The default_pool_machine_type must be a predefined machine type such as n2-standard-4."
  }
}

variable "default_pool_min_nodes" {
  description = "Minimum general-purpose nodes per zone."
  type        = number
  default     = 1

  validation {
    condition     = var.default_pool_min_nodes >= 0 && var.default_pool_min_nodes <= 100 && floor(var.default_pool_min_nodes) == var.default_pool_min_nodes
    error_message = "The default_pool_min_nodes must be a whole number from 0 to 100."
  }
}

variable "default_pool_max_nodes" {
  description = "Maximum general-purpose nodes per zone."
  type        = number
  default     = 3

  validation {
    condition     = var.default_pool_max_nodes >= 1 && var.default_pool_max_nodes <= 100 && floor(var.default_pool_max_nodes) == var.default_pool_max_nodes && var.default_pool_max_nodes >= var.default_pool_min_nodes
    error_message = "The default_pool_max_nodes must be a whole number from 1 to 100, and at least default_pool_min_nodes."
  }
}

variable "gpu_accelerator_type" {
  description = "GPU of the GPU node pool: nvidia-tesla-t4 (N1 machines) or nvidia-l4 (G2 machines)."
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
    error_message = "The gpu_machine_type does not fit the accelerator: nvidia-tesla-t4 runs on n1-standard-N, nvidia-l4 on g2-standard-N."
  }
}

variable "gpu_count" {
  description = "GPUs per GPU node: 1, 2 or 4 for T4; for L4 the machine type fixes it (1 on g2-standard-4 to -32 except 2 on g2-standard-24, 4 on -48, 8 on -96)."
  type        = number
  default     = 1

  validation {
    condition     = contains([1, 2, 4, 8], var.gpu_count)
    error_message = "The gpu_count must be 1, 2, 4 or 8 (the cluster module checks it against the machine type)."
  }
}

variable "gpu_pool_min_nodes" {
  description = "Minimum GPU nodes per zone; 0 lets the GPU pool scale to zero."
  type        = number
  default     = 0

  validation {
    condition     = var.gpu_pool_min_nodes >= 0 && var.gpu_pool_min_nodes <= 50 && floor(var.gpu_pool_min_nodes) == var.gpu_pool_min_nodes
    error_message = "The gpu_pool_min_nodes must be a whole number from 0 to 50."
  }
}

variable "gpu_pool_max_nodes" {
  description = "Maximum GPU nodes per zone (mind the regional GPU quota)."
  type        = number
  default     = 2

  validation {
    condition     = var.gpu_pool_max_nodes >= 1 && var.gpu_pool_max_nodes <= 50 && floor(var.gpu_pool_max_nodes) == var.gpu_pool_max_nodes && var.gpu_pool_max_nodes >= var.gpu_pool_min_nodes
    error_message = "The gpu_pool_max_nodes must be a whole number from 1 to 50, and at least gpu_pool_min_nodes."
  }
}

variable "gpu_spot" {
  description = "Run GPU nodes as Spot VMs (cheaper, preemptible)."
  type        = bool
  default     = true
}

variable "registry_repository_id" {
  description = "ID of the Artifact Registry Docker repository."
  type        = string
  default     = "inferops"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.registry_repository_id))
    error_message = "The registry_repository_id must be 1 to 63 characters: lowercase letters, digits and '-', starting with a letter."
  }
}

variable "registry_kms_key_name" {
  description = "Cloud KMS key (in the region) that encrypts the registry's images; null uses Google-managed encryption."
  type        = string
  default     = null

  validation {
    condition     = var.registry_kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.registry_kms_key_name))
    error_message = "The registry_kms_key_name must be a crypto key ID: projects/PROJECT/locations/REGION/keyRings/RING/cryptoKeys/KEY."
  }
}

variable "kubernetes_namespace" {
  description = "Kubernetes namespace of the inference (service account inference) and pipeline (service account pipeline) workloads."
  type        = string
  default     = "inferops"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.kubernetes_namespace))
    error_message = "The kubernetes_namespace must be a lowercase DNS label."
  }
}

variable "metrics_namespace" {
  description = "namespace label of the generic_task resource the service writes its metrics to (its telemetry.gcp.namespace setting)."
  type        = string
  default     = "inferops"

  validation {
    condition     = length(var.metrics_namespace) > 0 && !strcontains(var.metrics_namespace, "\"")
    error_message = "The metrics_namespace must be a non-empty string without double quotes."
  }
}

variable "notification_email" {
  description = "E-mail address that receives the alerts; null sends them nowhere (they still show in Cloud Monitoring)."
  type        = string
  default     = null

  validation {
    condition     = var.notification_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.notification_email))
    error_message = "The notification_email must be an e-mail address."
  }
}

variable "latency_p95_threshold_seconds" {
  description = "p95 request duration (seconds) of the chat route above which a track alerts."
  type        = number
  default     = 2

  validation {
    condition     = var.latency_p95_threshold_seconds > 0 && var.latency_p95_threshold_seconds <= 600
    error_message = "The latency_p95_threshold_seconds must be greater than 0 and at most 600."
  }
}

variable "error_ratio_threshold" {
  description = "Fraction of 5xx answers above which a track alerts (0.01 = 1%)."
  type        = number
  default     = 0.01

  validation {
    condition     = var.error_ratio_threshold > 0 && var.error_ratio_threshold < 1
    error_message = "The error_ratio_threshold must be between 0 and 1, exclusive."
  }
}

variable "cost_budget_usd_per_hour" {
  description = "Budget of the service's estimated inference cost in USD per hour; a sustained higher rate alerts."
  type        = number
  default     = 5

  validation {
    condition     = var.cost_budget_usd_per_hour > 0 && var.cost_budget_usd_per_hour <= 100000
    error_message = "The cost_budget_usd_per_hour must be greater than 0 and at most 100000."
  }
}
