# IRSA: the IAM roles that Kubernetes service accounts assume through the
# cluster's OIDC provider (IAM roles for service accounts).
#
#   service   the inference service (inferops/inference by default): push its
#             metrics to its own CloudWatch namespace and its traces to X-Ray;
#   pipeline  the release pipeline (inferops/pipeline by default): push images to
#             the one ECR repository, read CloudWatch metrics, manage the alarms
#             that carry its prefix, and describe the cluster.
#
# Each role trusts exactly one service account (the token's sub claim) with the
# STS audience, so no other pod, namespace or cluster can assume it.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # arn:aws:iam::<account>:oidc-provider/oidc.eks.<region>.amazonaws.com/id/<id>
  # -> oidc.eks.<region>.amazonaws.com/id/<id>, the prefix of the token's claims.
  oidc_issuer = element(split(":oidc-provider/", var.oidc_provider_arn), 1)

  accounts = {
    service  = var.service_account
    pipeline = var.pipeline_service_account
  }
}

data "aws_iam_policy_document" "assume" {
  for_each = local.accounts

  statement {
    sid     = "ServiceAccount"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${each.value.namespace}:${each.value.name}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

# --- The inference service.

resource "aws_iam_role" "service" {
  name                 = "${var.name}-service"
  description          = "Assumed by the inference service's ServiceAccount ${var.service_account.namespace}/${var.service_account.name}."
  assume_role_policy   = data.aws_iam_policy_document.assume["service"].json
  max_session_duration = 3600

  tags = var.tags
}

data "aws_iam_policy_document" "service" {
  # PutMetricData and the X-Ray calls have no resource-level permissions: their
  # resource can only be "*". The metrics statement is narrowed to the service's
  # namespace by the condition key CloudWatch provides for that.
  statement {
    sid       = "PutServiceMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [var.metric_namespace]
    }
  }

  statement {
    sid = "PutTraces"
    actions = [
      "xray:PutTraceSegments",
      "xray:PutTelemetryRecords",
      "xray:GetSamplingRules",
      "xray:GetSamplingTargets",
      "xray:GetSamplingStatisticSummaries",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "service" {
  name   = "metrics-and-traces"
  role   = aws_iam_role.service.id
  policy = data.aws_iam_policy_document.service.json
}

# --- The release pipeline.

resource "aws_iam_role" "pipeline" {
  name                 = "${var.name}-pipeline"
  description          = "Assumed by the release pipeline's ServiceAccount ${var.pipeline_service_account.namespace}/${var.pipeline_service_account.name}."
  assume_role_policy   = data.aws_iam_policy_document.assume["pipeline"].json
  max_session_duration = 3600

  tags = var.tags
}

data "aws_iam_policy_document" "pipeline" {
  statement {
    sid = "PushServiceImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImageScanFindings",
      "ecr:DescribeImages",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:ListImages",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [var.ecr_repository_arn]
  }

  # Registry login and metric reads take no resource ARN.
  statement {
    sid = "ReadWithoutResource"
    actions = [
      "ecr:GetAuthorizationToken",
      "cloudwatch:GetMetricData",
      "cloudwatch:GetMetricStatistics",
      "cloudwatch:ListMetrics",
    ]
    resources = ["*"]
  }

  # DescribeAlarms is scoped too: the pipeline lists its alarms with
  # AlarmNamePrefix set to the prefix.
  statement {
    sid = "ManagePipelineAlarms"
    actions = [
      "cloudwatch:DeleteAlarms",
      "cloudwatch:DescribeAlarmHistory",
      "cloudwatch:DescribeAlarms",
      "cloudwatch:DisableAlarmActions",
      "cloudwatch:EnableAlarmActions",
      "cloudwatch:ListTagsForResource",
      "cloudwatch:PutMetricAlarm",
      "cloudwatch:SetAlarmState",
      "cloudwatch:TagResource",
    ]
    resources = ["arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${var.alarm_name_prefix}*"]
  }

  statement {
    sid       = "DescribeCluster"
    actions   = ["eks:DescribeCluster"]
    resources = [var.cluster_arn]
  }
}

resource "aws_iam_role_policy" "pipeline" {
  name   = "release"
  role   = aws_iam_role.pipeline.id
  policy = data.aws_iam_policy_document.pipeline.json
}
