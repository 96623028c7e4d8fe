output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the EKS cluster."
  value       = aws_eks_cluster.this.arn
}

output "cluster_version" {
  description = "Kubernetes minor version the control plane runs."
  value       = aws_eks_cluster.this.version
}

output "cluster_endpoint" {
  description = "URL of the Kubernetes API server."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64-encoded certificate of the cluster's certificate authority, as a kubeconfig's certificate-authority-data wants it."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_security_group_id" {
  description = "ID of the security group EKS made for the control plane and the managed nodes."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "oidc_issuer_url" {
  description = "URL of the cluster's OIDC issuer (https://oidc.eks.<region>.amazonaws.com/id/...)."
  value       = aws_eks_cluster.this.identity[0].oidc[0].issuer
}

output "oidc_provider_arn" {
  description = "ARN of the IAM OIDC provider that IRSA role trust policies name as their federated principal."
  value       = aws_iam_openid_connect_provider.this.arn
}

output "node_role_arn" {
  description = "ARN of the IAM role the nodes run with."
  value       = aws_iam_role.node.arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the Kubernetes secrets and the control-plane logs."
  value       = aws_kms_key.cluster.arn
}

output "cluster_log_group_name" {
  description = "Name of the CloudWatch log group of the control-plane logs."
  value       = aws_cloudwatch_log_group.cluster.name
}

output "node_groups" {
  description = "The node groups, by pool: name, capacity type, instance types and scaling bounds."
  value = {
    cpu = {
      name           = aws_eks_node_group.cpu.node_group_name
      capacity_type  = aws_eks_node_group.cpu.capacity_type
      instance_types = aws_eks_node_group.cpu.instance_types
      min_size       = var.cpu_min_size
      max_size       = var.cpu_max_size
    }
    gpu = {
      name           = aws_eks_node_group.gpu.node_group_name
      capacity_type  = aws_eks_node_group.gpu.capacity_type
      instance_types = aws_eks_node_group.gpu.instance_types
      min_size       = var.gpu_min_size
      max_size       = var.gpu_max_size
    }
  }
}
