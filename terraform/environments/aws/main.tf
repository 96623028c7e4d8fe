# The AWS environment: an EKS cluster with CPU and Spot GPU node groups in a
# three-zone VPC, the ECR repository of the service image, the IRSA roles of the
# service and the pipeline, and the CloudWatch logs, alarms, topic and dashboard.
# Each part is a module under terraform/modules/aws; this file only wires them.

provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}

locals {
  tags = merge(
    {
      "inferops/deployment" = var.name
      "managed-by"          = "terraform"
    },
    var.tags,
  )
}

module "network" {
  source = "../../modules/aws/network"

  name                    = var.name
  cluster_name            = var.name
  vpc_cidr                = var.vpc_cidr
  availability_zones      = var.availability_zones
  az_count                = 3
  flow_log_retention_days = var.log_retention_days
}

module "eks" {
  source = "../../modules/aws/eks"

  name                       = var.name
  kubernetes_version         = var.kubernetes_version
  subnet_ids                 = module.network.private_subnet_ids
  public_access_cidrs        = var.public_access_cidrs
  cluster_log_retention_days = var.log_retention_days

  cpu_instance_types = var.cpu_instance_types
  cpu_desired_size   = var.cpu_desired_size
  cpu_min_size       = var.cpu_min_size
  cpu_max_size       = var.cpu_max_size

  gpu_instance_types = var.gpu_instance_types
  gpu_desired_size   = var.gpu_desired_size
  gpu_min_size       = var.gpu_min_size
  gpu_max_size       = var.gpu_max_size

  node_tags = local.tags
}

module "ecr" {
  source = "../../modules/aws/ecr"

  repository_name = var.ecr_repository_name
}

module "observability" {
  source = "../../modules/aws/observability"

  name                          = var.name
  cluster_name                  = var.name
  metric_namespace              = var.metric_namespace
  model                         = var.model
  tracks                        = var.tracks
  latency_p95_threshold_seconds = var.latency_p95_threshold_seconds
  error_rate_threshold_percent  = var.error_rate_threshold_percent
  cost_budget_usd_per_hour      = var.cost_budget_usd_per_hour
  alarm_emails                  = var.alarm_emails
  log_retention_days            = var.log_retention_days
}

module "irsa" {
  source = "../../modules/aws/irsa"

  name               = var.name
  oidc_provider_arn  = module.eks.oidc_provider_arn
  cluster_arn        = module.eks.cluster_arn
  ecr_repository_arn = module.ecr.repository_arn
  metric_namespace   = var.metric_namespace
  alarm_name_prefix  = module.observability.alarm_name_prefix

  service_account = {
    namespace = var.kubernetes_namespace
    name      = "inference"
  }

  pipeline_service_account = {
    namespace = var.kubernetes_namespace
    name      = "pipeline"
  }
}
