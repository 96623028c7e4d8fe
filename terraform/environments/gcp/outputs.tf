output "project_id" {
  description = "Project the environment runs in."
  value       = var.project_id
}

output "region" {
  description = "Region of the cluster, registry and network."
  value       = var.region
}

output "cluster_name" {
  description = "Name of the GKE cluster."
  value       = module.gke.cluster_name
}

output "cluster_endpoint" {
  description = "Address of the Kubernetes API server (private when enable_private_endpoint is true)."
  value       = module.gke.endpoint
}

output "cluster_ca_certificate" {
  description = "Base64-encoded certificate of the cluster's certificate authority."
  value       = module.gke.ca_certificate
}

output "kubeconfig_command" {
  description = "Command that writes the cluster's credentials into the kubeconfig."
  value       = "gcloud container clusters get-credentials ${module.gke.cluster_name} --region ${var.region} --project ${var.project_id}"
}

output "registry_url" {
  description = "Docker address of the image repository (REGION-docker.pkg.dev/PROJECT/REPOSITORY); images are pushed as URL/IMAGE:TAG."
  value       = module.registry.url
}

output "service_account_email" {
  description = "Google service account of the inference service (annotate the Kubernetes service account inferops/inference with it)."
  value       = module.identity.service_account_email
}

output "pipeline_service_account_email" {
  description = "Google service account of the release pipeline (annotate the Kubernetes service account inferops/pipeline with it)."
  value       = module.identity.pipeline_account_email
}

output "workload_identity_annotations" {
  description = "Annotations of each Kubernetes service account (NAMESPACE/NAME) that binds it to its Google service account."
  value       = module.identity.kubernetes_annotations
}

output "dashboard_id" {
  description = "ID of the Cloud Monitoring dashboard (projects/PROJECT_NUMBER/dashboards/ID)."
  value       = module.monitoring.dashboard_id
}

output "alert_policy_ids" {
  description = "IDs of the Cloud Monitoring alert policies, by purpose (latency_p95, error_ratio, cost_per_hour)."
  value       = module.monitoring.alert_policy_ids
}

output "node_pools" {
  description = "Node pools with what decides their cost: machine type, zones, per-zone node limits, accelerator type and count, Spot, disk."
  value       = module.gke.node_pools
}

output "network_name" {
  description = "Name of the VPC."
  value       = module.network.network_name
}

output "nat_ips" {
  description = "Reserved egress addresses of Cloud NAT; empty when Cloud NAT allocates them."
  value       = module.network.nat_ips
}
