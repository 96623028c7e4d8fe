# EKS: the Kubernetes cluster the inference service runs on.
#
# It makes the control plane (private endpoint always, public endpoint only for
# the CIDRs given; every control-plane log type on, to a KMS-encrypted log group;
# Kubernetes secrets encrypted with a rotating KMS key), the IAM OIDC provider that
# IAM roles for service accounts (IRSA) trust, and two managed node groups:
#
#   cpu  on-demand general-purpose nodes for the system add-ons, the router, the
#        cache and the pipeline's jobs;
#   gpu  Spot GPU nodes for the inference pods, tainted nvidia.com/gpu=true:NoSchedule
#        so that only pods that tolerate the taint (and ask for a GPU) land there.
#
# Both node groups boot from launch templates that require IMDSv2 and encrypt
# their root volumes. The NVIDIA AMIs carry the driver and container toolkit; the
# NVIDIA device plugin itself is deployed from the GitOps repository.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # EKS writes its control-plane logs to this group; creating it first lets
  # Terraform set its retention and key instead of EKS creating it unencrypted
  # and kept forever.
  cluster_log_group_name = "/aws/eks/${var.name}/cluster"

  public_endpoint = length(var.public_access_cidrs) > 0

  gpu_labels = {
    "nvidia.com/gpu.present" = "true"
    "inferops/pool"          = "gpu"
  }

  cpu_labels = {
    "inferops/pool" = "cpu"
  }
}

# --- Encryption key: Kubernetes secrets (envelope encryption) and the control-plane log group.

resource "aws_kms_key" "cluster" {
  description             = "Encrypts the Kubernetes secrets and control-plane logs of the EKS cluster ${var.name}."
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsClusterLogGroup"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action = [
          "kms:Encrypt*",
          "kms:Decrypt*",
          "kms:ReEncrypt*",
          "kms:GenerateDataKey*",
          "kms:Describe*",
        ]
        Resource = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.cluster_log_group_name}"
          }
        }
      },
    ]
  })

  tags = merge(var.tags, { Name = "${var.name}-eks" })
}

resource "aws_kms_alias" "cluster" {
  name          = "alias/${var.name}-eks"
  target_key_id = aws_kms_key.cluster.key_id
}

resource "aws_cloudwatch_log_group" "cluster" {
  #checkov:skip=CKV_AWS_338:retention is a validated variable, 7 days by default; control-plane logs serve recent debugging and audit, and longer retention is opt-in because audit logs are large
  name              = local.cluster_log_group_name
  retention_in_days = var.cluster_log_retention_days
  kms_key_id        = aws_kms_key.cluster.arn

  tags = var.tags
}

# --- Control plane.

data "aws_iam_policy_document" "cluster_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]

    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name_prefix        = "${substr(var.name, 0, 24)}-cluster-"
  description        = "Assumed by the EKS control plane of ${var.name}."
  assume_role_policy = data.aws_iam_policy_document.cluster_assume.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "cluster" {
  for_each = toset(["AmazonEKSClusterPolicy", "AmazonEKSVPCResourceController"])

  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

data "aws_iam_policy_document" "cluster_encryption" {
  statement {
    sid = "UseSecretsKey"
    actions = [
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:ListGrants",
      "kms:DescribeKey",
    ]
    resources = [aws_kms_key.cluster.arn]
  }
}

resource "aws_iam_role_policy" "cluster_encryption" {
  name   = "encrypt-secrets"
  role   = aws_iam_role.cluster.id
  policy = data.aws_iam_policy_document.cluster_encryption.json
}

resource "aws_eks_cluster" "this" {
  name                      = var.name
  version                   = var.kubernetes_version
  role_arn                  = aws_iam_role.cluster.arn
  enabled_cluster_log_types = var.cluster_log_types

  vpc_config {
    subnet_ids              = var.subnet_ids
    endpoint_private_access = true
    endpoint_public_access  = local.public_endpoint
    public_access_cidrs     = local.public_endpoint ? var.public_access_cidrs : null
  }

  encryption_config {
    resources = ["secrets"]

    provider {
      key_arn = aws_kms_key.cluster.arn
    }
  }

  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = true
  }

  upgrade_policy {
    support_type = var.support_type
  }

  tags = merge(var.tags, { Name = var.name })

  depends_on = [
    aws_iam_role_policy_attachment.cluster,
    aws_iam_role_policy.cluster_encryption,
    aws_cloudwatch_log_group.cluster,
  ]
}

# IAM trusts the cluster's service-account tokens through this provider (IRSA).
# No thumbprint is given: IAM verifies the EKS issuer against its own trusted CAs.
resource "aws_iam_openid_connect_provider" "this" {
  url            = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list = ["sts.amazonaws.com"]

  tags = merge(var.tags, { Name = "${var.name}-irsa" })
}

# --- Nodes.

data "aws_iam_policy_document" "node_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name_prefix        = "${substr(var.name, 0, 26)}-node-"
  description        = "Instance role of the EKS nodes of ${var.name}."
  assume_role_policy = data.aws_iam_policy_document.node_assume.json

  tags = var.tags
}

# Worker and CNI policies are what a node needs to join and wire pods; the ECR
# policy lets it pull images; SSM gives shell access without SSH keys or open ports.
resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonSSMManagedInstanceCore",
  ])

  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

# The hop limit of 1 keeps pods (which get AWS credentials through IRSA) away
# from the node's instance credentials; host-network agents still reach IMDS.
resource "aws_launch_template" "node" {
  for_each = {
    cpu = { description = "CPU", disk_size_gib = var.cpu_disk_size_gib }
    gpu = { description = "GPU", disk_size_gib = var.gpu_disk_size_gib }
  }

  name_prefix            = "${var.name}-${each.key}-"
  description            = "${each.value.description} nodes of the EKS cluster ${var.name}."
  update_default_version = true

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = each.value.disk_size_gib
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = var.metadata_hop_limit
  }

  dynamic "tag_specifications" {
    for_each = ["instance", "volume"]
    content {
      resource_type = tag_specifications.value
      tags          = merge(var.tags, var.node_tags, { Name = "${var.name}-${each.key}", "inferops/pool" = each.key })
    }
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_eks_node_group" "cpu" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "${var.name}-cpu"
  version         = aws_eks_cluster.this.version
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.subnet_ids
  ami_type        = var.cpu_ami_type
  capacity_type   = "ON_DEMAND"
  instance_types  = var.cpu_instance_types
  labels          = local.cpu_labels

  scaling_config {
    desired_size = var.cpu_desired_size
    min_size     = var.cpu_min_size
    max_size     = var.cpu_max_size
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.node["cpu"].id
    version = aws_launch_template.node["cpu"].latest_version
  }

  tags = merge(var.tags, { Name = "${var.name}-cpu" })

  # A cluster autoscaler moves desired_size; a plan must not move it back.
  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

resource "aws_eks_node_group" "gpu" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "${var.name}-gpu"
  version         = aws_eks_cluster.this.version
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.subnet_ids
  ami_type        = var.gpu_ami_type
  capacity_type   = "SPOT"
  instance_types  = var.gpu_instance_types
  labels          = local.gpu_labels

  taint {
    key    = "nvidia.com/gpu"
    value  = "true"
    effect = "NO_SCHEDULE"
  }

  scaling_config {
    desired_size = var.gpu_desired_size
    min_size     = var.gpu_min_size
    max_size     = var.gpu_max_size
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.node["gpu"].id
    version = aws_launch_template.node["gpu"].latest_version
  }

  tags = merge(var.tags, { Name = "${var.name}-gpu" })

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

# EKS-managed versions of the core add-ons, so that cluster upgrades upgrade them
# too. They wait for the CPU nodes: CoreDNS cannot become healthy without nodes.
resource "aws_eks_addon" "this" {
  for_each = toset(var.addons)

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.value
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "PRESERVE"

  tags = var.tags

  depends_on = [aws_eks_node_group.cpu]
}
