output "environment" {
  description = "Name of the environment."
  value       = var.environment
}

output "state_dir" {
  description = "Absolute path of the environment's state folder."
  value       = var.state_dir
}

output "redis" {
  description = "Redis: host, port and data folder."
  value       = terraform_data.redis.output
}

output "prometheus" {
  description = "Prometheus: host, port, data folder and scrape interval."
  value       = terraform_data.prometheus.output
}

output "router" {
  description = "Traffic router (nginx): host, port and prefix folder."
  value       = terraform_data.router.output
}

output "prefect" {
  description = "Prefect API server: host, port and PREFECT_HOME."
  value       = terraform_data.prefect.output
}

output "services" {
  description = "Service instances: host, the port range they draw API and metrics ports from, and default replica counts."
  value       = terraform_data.services.output
}

output "gitops" {
  description = "GitOps repository: bare remote, working copy, branch and the environment's path in it."
  value       = terraform_data.gitops.output
}

output "images" {
  description = "Folder holding the content-addressed service images."
  value       = terraform_data.images.output
}
