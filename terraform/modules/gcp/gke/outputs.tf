output "cluster_name" {
  description = "Name of the cluster."
  value       = google_container_cluster.this.name
}

output "cluster_id" {
  description = "ID of the cluster (projects/PROJECT/locations/REGION/clusters/NAME)."
  value       = google_container_cluster.this.id
}

output "location" {
  description = "Region of the cluster."
  value       = google_container_cluster.this.location
}

output "endpoint" {
  description = "Address of the Kubernetes API server (the private one when enable_private_endpoint is true)."
  value       = google_container_cluster.this.endpoint
}

output "private_endpoint" {
  description = "Private address of the Kubernetes API server, reachable from the VPC."
  value       = google_container_cluster.this.private_cluster_config[0].private_endpoint
}

output "ca_certificate" {
  description = "Base64-encoded public certificate of the cluster's certificate authority."
  value       = google_container_cluster.this.master_auth[0].cluster_ca_certificate
}

output "master_version" {
  description = "Kubernetes version the control plane runs now."
  value       = google_container_cluster.this.master_version
}

output "workload_pool" {
  description = "Workload Identity pool of the cluster (PROJECT.svc.id.goog); it exists once the cluster does."
  value       = google_container_cluster.this.workload_identity_config[0].workload_pool
}

output "node_service_account_email" {
  description = "Email of the nodes' service account (grant it read access to image repositories)."
  value       = google_service_account.nodes.email
}

output "secrets_kms_key_id" {
  description = "ID of the Cloud KMS key that encrypts Kubernetes secrets."
  value       = google_kms_crypto_key.secrets.id
}

output "node_pools" {
  description = "What each node pool runs and may cost: machine type, zones, per-zone node limits, accelerator, Spot and disk."
  value = {
    default = {
      name               = google_container_node_pool.default.name
      machine_type       = var.default_pool_machine_type
      zones              = google_container_node_pool.default.node_locations
      min_nodes_per_zone = var.default_pool_min_nodes
      max_nodes_per_zone = var.default_pool_max_nodes
      accelerator_type   = null
      accelerator_count  = 0
      spot               = false
      disk_type          = "pd-balanced"
      disk_size_gb       = var.default_pool_disk_size_gb
    }
    gpu = {
      name               = google_container_node_pool.gpu.name
      machine_type       = local.gpu_machine_type
      zones              = google_container_node_pool.gpu.node_locations
      min_nodes_per_zone = var.gpu_pool_min_nodes
      max_nodes_per_zone = var.gpu_pool_max_nodes
      accelerator_type   = var.gpu_accelerator_type
      accelerator_count  = var.gpu_count
      spot               = var.gpu_spot
      disk_type          = "pd-balanced"
      disk_size_gb       = var.gpu_pool_disk_size_gb
    }
  }
}
