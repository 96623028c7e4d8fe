output "region" {
  description = "AWS region of the environment."
  value       = var.region
}

output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "URL of the Kubernetes API server."
  value       = module.eks.cluster_endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64-encoded certificate of the cluster's certificate authority (a kubeconfig's certificate-authority-data)."
  value       = module.eks.cluster_certificate_authority_data
}

output "kubeconfig_command" {
  description = "Command that writes a kubeconfig entry for the cluster."
  value       = "aws eks update-kubeconfig --name ${module.eks.cluster_name} --region ${var.region}"
}

output "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider (the federated principal of IRSA roles)."
  value       = module.eks.oidc_provider_arn
}

output "ecr_repository_url" {
  description = "URL to tag and push the service image to."
  value       = module.ecr.repository_url
}

output "service_role_arn" {
  description = "IAM role of the inference service; the eks.amazonaws.com/role-arn annotation of its ServiceAccount."
  value       = module.irsa.service_role_arn
}

output "pipeline_role_arn" {
  description = "IAM role of the release pipeline; the eks.amazonaws.com/role-arn annotation of its ServiceAccount."
  value       = module.irsa.pipeline_role_arn
}

output "sns_topic_arn" {
  description = "ARN of the SNS topic the alarms notify."
  value       = module.observability.sns_topic_arn
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard of the service."
  value       = module.observability.dashboard_name
}

output "alarm_names" {
  description = "Names of the service's alarms: latency_p95 and error_rate by track, and cost."
  value       = module.observability.alarm_names
}

output "alarm_name_prefix" {
  description = "Prefix of the alarms the pipeline may create, tune and delete."
  value       = module.observability.alarm_name_prefix
}

output "metric_namespace" {
  description = "CloudWatch namespace of the service's metrics."
  value       = var.metric_namespace
}

output "vpc_id" {
  description = "ID of the VPC."
  value       = module.network.vpc_id
}

output "private_subnet_ids" {
  description = "IDs of the private subnets, one per zone."
  value       = module.network.private_subnet_ids
}

output "nat_public_ips" {
  description = "Public addresses the cluster's egress leaves from, one per zone."
  value       = module.network.nat_public_ips
}

output "node_groups" {
  description = "The node groups by pool (cpu, gpu): name, capacity type, instance types and scaling bounds."
  value       = module.eks.node_groups
}
