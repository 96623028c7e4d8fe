# Network for a private GKE cluster: a custom-mode VPC, one regional subnet with
# secondary ranges for pods and services (VPC-native), Private Google Access and
# VPC flow logs on the subnet, a Cloud Router with Cloud NAT so nodes without
# external addresses can reach the internet (image pulls, driver downloads), and
# a minimal set of firewall rules. GKE adds the rules it needs itself (control
# plane to nodes, node to node, pod ranges, load-balancer health checks).

locals {
  subnet_name = "${var.name}-nodes"
}

resource "google_compute_network" "this" {
  project                         = var.project_id
  name                            = var.name
  description                     = "VPC of the ${var.name} GKE cluster."
  auto_create_subnetworks         = false
  routing_mode                    = "REGIONAL"
  delete_default_routes_on_create = false
}

resource "google_compute_subnetwork" "nodes" {
  project                  = var.project_id
  name                     = local.subnet_name
  description              = "Nodes of the ${var.name} GKE cluster; secondary ranges hold pod and service addresses."
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.nodes_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = var.pods_range_name
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = var.services_range_name
    ip_cidr_range = var.services_cidr
  }

  log_config {
    aggregation_interval = var.flow_logs_aggregation_interval
    flow_sampling        = var.flow_logs_sampling
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "this" {
  project     = var.project_id
  name        = "${var.name}-router"
  description = "Carries the Cloud NAT gateway of the ${var.name} VPC."
  region      = var.region
  network     = google_compute_network.this.id
}

# Static egress addresses, only when nat_static_ip_count > 0 (for allow-lists
# of outside services); otherwise Cloud NAT allocates addresses itself.
resource "google_compute_address" "nat" {
  count = var.nat_static_ip_count

  project      = var.project_id
  name         = "${var.name}-nat-${count.index}"
  description  = "Egress address of the ${var.name} Cloud NAT gateway."
  region       = var.region
  address_type = "EXTERNAL"
  network_tier = "PREMIUM"
}

resource "google_compute_router_nat" "this" {
  project = var.project_id
  name    = "${var.name}-nat"
  router  = google_compute_router.this.name
  region  = var.region

  nat_ip_allocate_option = var.nat_static_ip_count > 0 ? "MANUAL_ONLY" : "AUTO_ONLY"
  nat_ips                = google_compute_address.nat[*].self_link

  # Only the cluster subnet (primary and secondary ranges) is translated.
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.nodes.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  enable_dynamic_port_allocation      = true
  enable_endpoint_independent_mapping = false
  min_ports_per_vm                    = var.nat_min_ports_per_vm
  max_ports_per_vm                    = var.nat_max_ports_per_vm

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# Everything not allowed by a higher-priority rule (GKE's own rules use 1000) is
# dropped, and the drops are logged. This mirrors the implied deny rule but
# makes it visible and auditable.
resource "google_compute_firewall" "deny_all_ingress" {
  project     = var.project_id
  name        = "${var.name}-deny-all-ingress"
  description = "Drop and log all ingress not allowed by a higher-priority rule."
  network     = google_compute_network.this.id
  direction   = "INGRESS"
  priority    = 65534

  source_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# Optional: SSH to nodes through Identity-Aware Proxy TCP forwarding only (the
# nodes have no external addresses). Off by default.
resource "google_compute_firewall" "allow_iap_ssh" {
  count = var.allow_iap_ssh ? 1 : 0

  project     = var.project_id
  name        = "${var.name}-allow-iap-ssh"
  description = "SSH to nodes from Identity-Aware Proxy TCP forwarding only."
  network     = google_compute_network.this.id
  direction   = "INGRESS"
  priority    = 1000

  # Google's published IAP TCP forwarding range.
  source_ranges = ["35.235.240.0/20"]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
