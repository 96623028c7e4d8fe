# Composes the GCP modules into one environment. Order of creation follows the
# references: APIs, network, cluster (its Workload Identity pool), registry,
# identities, monitoring.

locals {
  # Every labelled resource gets these through the provider's default_labels;
  # the modules add their own (cluster, pool) on top of var.labels.
  labels = merge(var.labels, {
    app        = "inferops"
    managed_by = "terraform"
  })

  # Zones of the cluster's node pools: the given ones, or the region's first
  # three (sorted, so the choice is stable from one plan to the next).
  zones = length(var.zones) > 0 ? var.zones : slice(
    sort(data.google_compute_zones.available[0].names),
    0,
    min(3, length(data.google_compute_zones.available[0].names)),
  )

  apis = [
    "artifactregistry.googleapis.com",
    "cloudkms.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudtrace.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "sts.googleapis.com",
  ]
}

# Read only when no zones are given (it needs the Compute Engine API enabled).
data "google_compute_zones" "available" {
  count = length(var.zones) > 0 ? 0 : 1

  project = var.project_id
  region  = var.region
}

# The APIs stay enabled when the environment is destroyed: other workloads of
# the project may use them.
resource "google_project_service" "apis" {
  for_each = var.enable_apis ? toset(local.apis) : toset([])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

module "network" {
  source = "../../modules/gcp/network"

  project_id          = var.project_id
  region              = var.region
  name                = var.name
  nodes_cidr          = var.nodes_cidr
  pods_cidr           = var.pods_cidr
  services_cidr       = var.services_cidr
  nat_static_ip_count = var.nat_static_ip_count

  depends_on = [google_project_service.apis]
}

module "gke" {
  source = "../../modules/gcp/gke"

  project_id          = var.project_id
  region              = var.region
  name                = var.name
  network             = module.network.network_id
  subnetwork          = module.network.subnetwork_id
  pods_range_name     = module.network.pods_range_name
  services_range_name = module.network.services_range_name
  zones               = local.zones
  gpu_zones           = var.gpu_zones

  release_channel            = var.release_channel
  min_master_version         = var.min_master_version
  enable_private_endpoint    = var.enable_private_endpoint
  master_ipv4_cidr_block     = var.master_ipv4_cidr_block
  master_authorized_networks = var.master_authorized_networks
  deletion_protection        = var.deletion_protection
  labels                     = var.labels

  default_pool_machine_type = var.default_pool_machine_type
  default_pool_min_nodes    = var.default_pool_min_nodes
  default_pool_max_nodes    = var.default_pool_max_nodes

  gpu_accelerator_type = var.gpu_accelerator_type
  gpu_machine_type     = var.gpu_machine_type
  gpu_count            = var.gpu_count
  gpu_pool_min_nodes   = var.gpu_pool_min_nodes
  gpu_pool_max_nodes   = var.gpu_pool_max_nodes
  gpu_spot             = var.gpu_spot

  depends_on = [google_project_service.apis]
}

module "registry" {
  source = "../../modules/gcp/artifact-registry"

  project_id    = var.project_id
  location      = var.region
  repository_id = var.registry_repository_id
  kms_key_name  = var.registry_kms_key_name
  labels        = var.labels

  reader_members = {
    gke_nodes = "serviceAccount:${module.gke.node_service_account_email}"
  }

  depends_on = [google_project_service.apis]
}

module "identity" {
  source = "../../modules/gcp/identity"

  project_id = var.project_id
  name       = var.name
  # The cluster's output, not "<project>.svc.id.goog" spelled out: the pool
  # exists only once the cluster does, and the bindings must wait for it.
  workload_pool       = module.gke.workload_pool
  namespace           = var.kubernetes_namespace
  registry_location   = module.registry.location
  registry_repository = module.registry.repository_id

  depends_on = [google_project_service.apis]
}

module "monitoring" {
  source = "../../modules/gcp/monitoring"

  project_id                    = var.project_id
  name                          = var.name
  namespace                     = var.metrics_namespace
  notification_email            = var.notification_email
  latency_p95_threshold_seconds = var.latency_p95_threshold_seconds
  error_ratio_threshold         = var.error_ratio_threshold
  cost_budget_usd_per_hour      = var.cost_budget_usd_per_hour
  labels                        = var.labels

  depends_on = [google_project_service.apis]
}
