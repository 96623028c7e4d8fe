# Two managed node pools. Autoscaling limits are per zone: a regional pool
# runs between min x zones and max x zones nodes.

resource "google_container_node_pool" "default" {
  project        = var.project_id
  name           = "default"
  cluster        = google_container_cluster.this.id
  location       = var.region
  node_locations = local.node_locations

  initial_node_count = var.default_pool_min_nodes

  autoscaling {
    min_node_count  = var.default_pool_min_nodes
    max_node_count  = var.default_pool_max_nodes
    location_policy = "BALANCED"
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    strategy        = "SURGE"
    max_surge       = 1
    max_unavailable = 0
  }

  node_config {
    machine_type    = var.default_pool_machine_type
    disk_size_gb    = var.default_pool_disk_size_gb
    disk_type       = "pd-balanced"
    image_type      = "COS_CONTAINERD"
    spot            = false
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    labels = {
      "inferops/pool" = "default"
    }

    resource_labels = merge(local.labels, {
      pool = "default"
    })

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

  timeouts {
    create = "30m"
    update = "30m"
    delete = "30m"
  }

  lifecycle {
    # The autoscaler owns the size after creation.
    ignore_changes = [initial_node_count]
  }
}

# GPU nodes for the model servers. GKE installs the NVIDIA driver itself
# (gpu_driver_installation_config), so no driver DaemonSet is needed. The
# taint keeps everything but GPU workloads off these nodes; those tolerate it
# and select the pool with the inferops/pool=gpu label.
resource "google_container_node_pool" "gpu" {
  project        = var.project_id
  name           = "gpu-${replace(var.gpu_accelerator_type, "nvidia-", "")}"
  cluster        = google_container_cluster.this.id
  location       = var.region
  node_locations = local.gpu_node_locations

  initial_node_count = var.gpu_pool_min_nodes

  autoscaling {
    min_node_count = var.gpu_pool_min_nodes
    max_node_count = var.gpu_pool_max_nodes
    # ANY follows spare capacity across zones, which lowers Spot preemptions
    # and stock-outs; BALANCED spreads on-demand nodes evenly.
    location_policy = var.gpu_spot ? "ANY" : "BALANCED"
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  # Upgrade in place, one node at a time: a surge node would need spare GPU
  # quota and capacity, which is often not there.
  upgrade_settings {
    strategy        = "SURGE"
    max_surge       = 0
    max_unavailable = 1
  }

  node_config {
    machine_type    = local.gpu_machine_type
    disk_size_gb    = var.gpu_pool_disk_size_gb
    disk_type       = "pd-balanced"
    image_type      = "COS_CONTAINERD"
    spot            = var.gpu_spot
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    guest_accelerator {
      type  = var.gpu_accelerator_type
      count = var.gpu_count

      gpu_driver_installation_config {
        gpu_driver_version = "LATEST"
      }
    }

    taint {
      key    = "nvidia.com/gpu"
      value  = "present"
      effect = "NO_SCHEDULE"
    }

    labels = {
      "inferops/pool" = "gpu"
    }

    resource_labels = merge(local.labels, {
      pool = "gpu"
    })

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

  timeouts {
    create = "30m"
    update = "30m"
    delete = "30m"
  }

  lifecycle {
    ignore_changes = [initial_node_count]
  }
}
