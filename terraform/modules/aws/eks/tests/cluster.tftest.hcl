# Plans the module offline against a mocked provider and checks what the
# cluster's security and the GPU scheduling depend on.
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
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{}" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab" }
  }
  mock_resource "aws_launch_template" {
    defaults = { id = "lt-0123456789abcdef0", latest_version = 1 }
  }
  mock_resource "aws_eks_cluster" {
    defaults = {
      identity              = [{ oidc = [{ issuer = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC" }] }]
      certificate_authority = [{ data = "Q0E=" }]
    }
  }
}

variables {
  subnet_ids = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1", "subnet-0123456789abcdef2"]
}

run "private_cluster_with_gpu_pool" {
  command = plan

  assert {
    condition     = aws_eks_cluster.this.vpc_config[0].endpoint_private_access && !aws_eks_cluster.this.vpc_config[0].endpoint_public_access
    error_message = "With no public_access_cidrs the API endpoint must be private only."
  }

  assert {
    condition     = aws_eks_cluster.this.version == "1.33" && length(aws_eks_cluster.this.enabled_cluster_log_types) == 5
    error_message = "The cluster must run 1.33 and log every control-plane log type."
  }

  assert {
    condition     = one(aws_eks_cluster.this.encryption_config).resources == toset(["secrets"]) && aws_kms_key.cluster.enable_key_rotation
    error_message = "Secrets must be encrypted with a rotating KMS key."
  }

  assert {
    condition     = aws_eks_node_group.gpu.capacity_type == "SPOT" && aws_eks_node_group.gpu.ami_type == "AL2023_x86_64_NVIDIA"
    error_message = "The GPU node group must be Spot on the NVIDIA AMI."
  }

  assert {
    condition     = [for t in aws_eks_node_group.gpu.taint : "${t.key}=${t.value}:${t.effect}"] == ["nvidia.com/gpu=true:NO_SCHEDULE"]
    error_message = "The GPU nodes must carry the nvidia.com/gpu=true:NoSchedule taint."
  }

  assert {
    condition     = aws_eks_node_group.gpu.labels == tomap({ "nvidia.com/gpu.present" = "true", "inferops/pool" = "gpu" })
    error_message = "The GPU nodes must carry the nvidia.com/gpu.present and inferops/pool labels."
  }

  assert {
    condition     = alltrue([for lt in values(aws_launch_template.node) : lt.metadata_options[0].http_tokens == "required" && lt.block_device_mappings[0].ebs[0].encrypted == "true"])
    error_message = "Both launch templates must require IMDSv2 and encrypt the root volume."
  }
}

run "public_endpoint_opt_in" {
  command = plan

  variables {
    public_access_cidrs = ["203.0.113.0/24"]
  }

  assert {
    condition     = aws_eks_cluster.this.vpc_config[0].endpoint_public_access && aws_eks_cluster.this.vpc_config[0].public_access_cidrs == toset(["203.0.113.0/24"])
    error_message = "Listing CIDRs must open the public endpoint to exactly those."
  }
}

run "rejects_al2_on_1_33" {
  command = plan

  variables {
    gpu_ami_type = "AL2_x86_64_GPU"
  }

  expect_failures = [var.gpu_ami_type]
}
