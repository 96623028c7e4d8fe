# A regional, private GKE Standard cluster for the inference service: private
# nodes (and optionally a private control-plane endpoint) behind master
# authorized networks, Workload Identity, Shielded nodes, Dataplane V2 (which
# enforces NetworkPolicy), Kubernetes secrets encrypted with a Cloud KMS key,
# system and workload logging, system monitoring plus Managed Prometheus. The
# default node pool is removed; two managed pools replace it (see
# node_pools.tf): a general-purpose pool and a GPU pool whose driver GKE
# installs. Nodes run as a dedicated least-privilege service account.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  workload_pool = "${var.project_id}.svc.id.goog"

  labels = merge(var.labels, {
    component = "gke"
  })

  # Empty lists mean "let GKE choose" (null): the cluster then spreads over
  # the region's default zones, and the GPU pool follows the cluster unless it
  # is given its own zones (accelerators are not offered in every zone).
  node_locations     = length(var.zones) > 0 ? var.zones : null
  gpu_node_locations = length(var.gpu_zones) > 0 ? var.gpu_zones : local.node_locations

  # The GPU machine type follows the accelerator unless it is set explicitly:
  # T4 cards attach to N1 machines, L4 cards come with G2 machines.
  gpu_machine_type = coalesce(var.gpu_machine_type, var.gpu_accelerator_type == "nvidia-l4" ? "g2-standard-4" : "n1-standard-4")

  # GKE's service agent encrypts and decrypts the secrets' data encryption keys.
  gke_service_agent = "serviceAccount:service-${data.google_project.this.number}@container-engine-robot.iam.gserviceaccount.com"
}

resource "google_container_cluster" "this" {
  #checkov:skip=CKV_GCP_65:Google Groups for RBAC needs a Google Workspace domain; it is enabled when rbac_security_group is set.
  project        = var.project_id
  name           = var.name
  description    = "Runs the inferops inference service (${var.name})."
  location       = var.region
  node_locations = local.node_locations

  network         = var.network
  subnetwork      = var.subnetwork
  networking_mode = "VPC_NATIVE"

  ip_allocation_policy {
    cluster_secondary_range_name  = var.pods_range_name
    services_secondary_range_name = var.services_range_name
  }

  # Node pools are managed as separate resources: the default pool is created
  # with one small node per zone (GKE requires one) and deleted straight away.
  remove_default_node_pool = true
  initial_node_count       = 1

  # Settings of that short-lived default pool, so that even it never runs with
  # the Compute Engine default service account or the legacy metadata server.
  node_config {
    machine_type    = "e2-small"
    disk_size_gb    = 30
    disk_type       = "pd-balanced"
    image_type      = "COS_CONTAINERD"
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    metadata = {
      disable-legacy-endpoints = "true"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }

  release_channel {
    channel = var.release_channel
  }
  min_master_version = var.min_master_version

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = var.enable_private_endpoint
    master_ipv4_cidr_block  = var.master_ipv4_cidr_block

    master_global_access_config {
      enabled = var.master_global_access
    }
  }

  master_authorized_networks_config {
    gcp_public_cidrs_access_enabled = false

    dynamic "cidr_blocks" {
      for_each = var.master_authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  workload_identity_config {
    workload_pool = local.workload_pool
  }

  enable_shielded_nodes       = true
  enable_legacy_abac          = false
  enable_intranode_visibility = true

  # Dataplane V2 (eBPF) enforces NetworkPolicy itself; the Calico network
  # policy add-on must stay off with it.
  datapath_provider = "ADVANCED_DATAPATH"
  network_policy {
    enabled = false
  }

  database_encryption {
    state    = "ENCRYPTED"
    key_name = google_kms_crypto_key.secrets.id
  }

  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  dynamic "authenticator_groups_config" {
    for_each = var.rbac_security_group == null ? [] : [var.rbac_security_group]
    content {
      security_group = authenticator_groups_config.value
    }
  }

  logging_config {
    enable_components = var.logging_components
  }

  monitoring_config {
    enable_components = var.monitoring_components

    managed_prometheus {
      enabled = var.managed_prometheus
    }
  }

  addons_config {
    http_load_balancing {
      disabled = false
    }
    horizontal_pod_autoscaling {
      disabled = false
    }
    gce_persistent_disk_csi_driver_config {
      enabled = true
    }
  }

  maintenance_policy {
    daily_maintenance_window {
      start_time = var.maintenance_start_time
    }
  }

  # GKE cost allocation: per-namespace and per-label costs in the billing export.
  cost_management_config {
    enabled = true
  }

  resource_labels     = local.labels
  deletion_protection = var.deletion_protection

  timeouts {
    create = "45m"
    update = "45m"
    delete = "45m"
  }

  lifecycle {
    # The default pool is gone after creation: its settings and size no longer
    # describe anything, so changing them must not replace the cluster.
    ignore_changes = [node_config, initial_node_count]
  }

  depends_on = [
    google_kms_crypto_key_iam_member.gke_secrets,
    google_project_iam_member.nodes,
  ]
}
