output "network_id" {
  description = "ID of the VPC (projects/PROJECT/global/networks/NAME)."
  value       = google_compute_network.this.id
}

output "network_name" {
  description = "Name of the VPC."
  value       = google_compute_network.this.name
}

output "network_self_link" {
  description = "Self link of the VPC."
  value       = google_compute_network.this.self_link
}

output "subnetwork_id" {
  description = "ID of the cluster subnet (projects/PROJECT/regions/REGION/subnetworks/NAME)."
  value       = google_compute_subnetwork.nodes.id
}

output "subnetwork_name" {
  description = "Name of the cluster subnet."
  value       = google_compute_subnetwork.nodes.name
}

output "subnetwork_self_link" {
  description = "Self link of the cluster subnet."
  value       = google_compute_subnetwork.nodes.self_link
}

output "pods_range_name" {
  description = "Name of the subnet's secondary range for pods."
  value       = var.pods_range_name
}

output "services_range_name" {
  description = "Name of the subnet's secondary range for services."
  value       = var.services_range_name
}

output "nodes_cidr" {
  description = "Primary range of the cluster subnet."
  value       = google_compute_subnetwork.nodes.ip_cidr_range
}

output "router_name" {
  description = "Name of the Cloud Router that carries the NAT gateway."
  value       = google_compute_router.this.name
}

output "nat_name" {
  description = "Name of the Cloud NAT gateway."
  value       = google_compute_router_nat.this.name
}

output "nat_ips" {
  description = "Reserved egress addresses of the NAT gateway; empty when Cloud NAT allocates them automatically."
  value       = google_compute_address.nat[*].address
}
