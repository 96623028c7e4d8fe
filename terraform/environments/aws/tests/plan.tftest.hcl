# Plans (and applies against a mocked provider) the whole environment offline:
# the modules' wiring, the validations, and the attributes that decide the cost.
# Run with: terraform init -backend=false && terraform test

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"] }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{}" }
  }
  mock_resource "aws_subnet" {
    defaults = { id = "subnet-0123456789abcdef0" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:us-east-1:123456789012:inferops-alarms" }
  }
  mock_resource "aws_cloudwatch_metric_alarm" {
    defaults = { arn = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:inferops-mock" }
  }
  mock_resource "aws_launch_template" {
    defaults = { id = "lt-0123456789abcdef0", latest_version = 1 }
  }
  mock_resource "aws_ecr_repository" {
    defaults = {
      arn            = "arn:aws:ecr:us-east-1:123456789012:repository/inferops/service"
      repository_url = "123456789012.dkr.ecr.us-east-1.amazonaws.com/inferops/service"
    }
  }
  mock_resource "aws_eks_cluster" {
    defaults = {
      arn                   = "arn:aws:eks:us-east-1:123456789012:cluster/inferops"
      endpoint              = "https://ABC.gr7.us-east-1.eks.amazonaws.com"
      identity              = [{ oidc = [{ issuer = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC" }] }]
      certificate_authority = [{ data = "Q0E=" }]
    }
  }
  mock_resource "aws_iam_openid_connect_provider" {
    defaults = { arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC" }
  }
}

# What the pipeline passes to every environment.
variables {
  environment = "aws"
  state_dir   = "/srv/app/.inferops/aws"
}

run "defaults_plan" {
  command = plan

  assert {
    condition     = length(module.network.nat_gateway_ids) == 3 && length(module.network.private_subnet_ids) == 3
    error_message = "The network must span three zones with one NAT gateway each."
  }

  assert {
    condition     = output.node_groups.cpu.capacity_type == "ON_DEMAND" && output.node_groups.cpu.instance_types == tolist(["m5.2xlarge"])
    error_message = "The CPU node group must be on-demand m5.2xlarge."
  }

  assert {
    condition     = output.node_groups.gpu.capacity_type == "SPOT" && output.node_groups.gpu.instance_types == tolist(["g4dn.xlarge", "g5.xlarge"])
    error_message = "The GPU node group must be Spot g4dn.xlarge/g5.xlarge."
  }

  assert {
    condition     = output.kubeconfig_command == "aws eks update-kubeconfig --name inferops --region us-east-1"
    error_message = "The kubeconfig command must name the cluster and the region."
  }

  assert {
    condition     = output.alarm_names.cost == "inferops-cost-per-hour" && output.alarm_names.latency_p95["stable"] == "inferops-stable-latency-p95"
    error_message = "The alarms must carry the <name>- prefix the pipeline role may manage."
  }
}

run "defaults_apply" {
  command = apply

  assert {
    condition     = output.ecr_repository_url == "123456789012.dkr.ecr.us-east-1.amazonaws.com/inferops/service"
    error_message = "The repository URL must flow to the outputs."
  }

  assert {
    condition     = output.oidc_provider_arn == "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
    error_message = "The OIDC provider ARN must flow to the outputs."
  }

  assert {
    condition     = output.dashboard_name == "inferops-service" && startswith(output.sns_topic_arn, "arn:aws:sns:")
    error_message = "The dashboard name and the topic ARN must flow to the outputs."
  }
}

run "two_tracks_and_public_endpoint" {
  command = plan

  variables {
    tracks              = { stable = "v1.4.2", canary = "v1.5.0" }
    public_access_cidrs = ["203.0.113.0/24"]
    availability_zones  = ["us-east-1a", "us-east-1b", "us-east-1c"]
  }

  assert {
    condition     = length(output.alarm_names.latency_p95) == 2 && length(output.alarm_names.error_rate) == 2
    error_message = "Each track must get its latency and error-rate alarms."
  }
}

run "rejects_patch_version" {
  command = plan

  variables {
    kubernetes_version = "1.33.1"
  }

  expect_failures = [var.kubernetes_version]
}

run "rejects_open_api" {
  command = plan

  variables {
    public_access_cidrs = ["0.0.0.0/0"]
  }

  expect_failures = [var.public_access_cidrs]
}

run "rejects_cpu_type_for_gpu" {
  command = plan

  variables {
    gpu_instance_types = ["m5.large"]
  }

  expect_failures = [var.gpu_instance_types]
}

run "rejects_desired_above_max" {
  command = plan

  variables {
    gpu_desired_size = 9
  }

  expect_failures = [var.gpu_desired_size]
}

run "rejects_unknown_retention" {
  command = plan

  variables {
    log_retention_days = 10
  }

  expect_failures = [var.log_retention_days]
}
