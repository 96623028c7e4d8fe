# Observability: where the cluster's and the service's telemetry lands, the alarms
# on the service's SLOs, and who hears about them.
#
# - CloudWatch log groups for Container Insights (application, dataplane, host,
#   performance) and for the service, with a short retention, KMS-encrypted.
# - Alarms on the metrics the service's CloudWatch exporter publishes (namespace
#   Inferops/Service, dimensions Model, Version, Track, Route), one set per track:
#     latency     p95 of RequestDurationSeconds on the latency route;
#     error rate  100 * Errors / Requests over every route (metric math; 0 below
#                 a minimum request count so that a handful of requests cannot page);
#   and one for the whole service:
#     cost        CostUsd summed over every track and route per hour, against the
#                 hourly budget.
#   A CloudWatch alarm needs the exact dimension values, so each watches the
#   version the tracks map names; the release pipeline re-targets the alarms named
#   <name>-... when it promotes a version (its role may write exactly those).
# - An SNS topic (KMS-encrypted) that the alarms notify, with optional e-mail
#   subscriptions, and a dashboard that finds every version and track by search.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  log_group_arn_prefix = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:"

  log_groups = {
    application = "/aws/containerinsights/${var.cluster_name}/application"
    dataplane   = "/aws/containerinsights/${var.cluster_name}/dataplane"
    host        = "/aws/containerinsights/${var.cluster_name}/host"
    performance = "/aws/containerinsights/${var.cluster_name}/performance"
    service     = "/inferops/${var.name}/service"
  }

  alarm_actions = [aws_sns_topic.alarms.arn]

  # Metric-math ids of the per-route series, and the expressions that add them up
  # (a route that sent nothing in a period counts as 0).
  error_ids   = [for i, _ in var.routes : "errors_${i}"]
  request_ids = [for i, _ in var.routes : "requests_${i}"]
  errors_sum  = "SUM(FILL([${join(", ", local.error_ids)}], 0))"
  request_sum = "SUM(FILL([${join(", ", local.request_ids)}], 0))"

  cost_series = flatten([
    for track, version in var.tracks : [
      for i, route in var.routes : {
        id      = "cost_${track}_${i}"
        track   = track
        version = version
        route   = route
      }
    ]
  ])

  # Dashboard: a SEARCH over the service's schema finds every version and track.
  schema       = "{${var.metric_namespace},Model,Version,Track,Route}"
  model_filter = "Model=\"${var.model}\""
}

# --- Encryption key: the log groups and the alarm topic.

resource "aws_kms_key" "this" {
  description             = "Encrypts the log groups and the alarm topic of ${var.name}."
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
        Sid       = "CloudWatchLogsGroups"
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
            "kms:EncryptionContext:aws:logs:arn" = [
              "${local.log_group_arn_prefix}/aws/containerinsights/${var.cluster_name}/*",
              "${local.log_group_arn_prefix}/inferops/${var.name}/*",
            ]
          }
        }
      },
      {
        # Alarms publish to the encrypted topic with CloudWatch's own identity.
        Sid       = "CloudWatchAlarmsPublish"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      },
    ]
  })

  tags = merge(var.tags, { Name = "${var.name}-observability" })
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}-observability"
  target_key_id = aws_kms_key.this.key_id
}

# --- Log groups.

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:retention is a validated variable, 7 days by default; these are debugging logs, and the SLO record lives in the metrics and the reports
  for_each = local.log_groups

  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn

  tags = merge(var.tags, { "inferops/logs" = each.key })
}

# --- Notifications.

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  display_name      = "${var.name} alarms"
  kms_master_key_id = aws_kms_key.this.arn

  tags = var.tags
}

resource "aws_sns_topic_policy" "alarms" {
  arn = aws_sns_topic.alarms.arn

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountManagesTopic"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action = [
          "sns:GetTopicAttributes",
          "sns:SetTopicAttributes",
          "sns:AddPermission",
          "sns:RemovePermission",
          "sns:DeleteTopic",
          "sns:Subscribe",
          "sns:ListSubscriptionsByTopic",
          "sns:Publish",
        ]
        Resource = aws_sns_topic.alarms.arn
      },
      {
        Sid       = "ServiceAlarmsPublish"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = {
          ArnLike = {
            "aws:SourceArn" = "arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${var.name}-*"
          }
          StringEquals = {
            "aws:SourceAccount" = local.account_id
          }
        }
      },
    ]
  })
}

# E-mail subscriptions stay pending until each address confirms.
resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alarm_emails)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

# --- Alarms.

resource "aws_cloudwatch_metric_alarm" "latency_p95" {
  for_each = var.tracks

  alarm_name          = "${var.name}-${each.key}-latency-p95"
  alarm_description   = "p95 request latency of ${var.model} ${each.value} (${each.key}) on ${var.latency_route} is above ${var.latency_p95_threshold_seconds} s."
  namespace           = var.metric_namespace
  metric_name         = "RequestDurationSeconds"
  extended_statistic  = "p95"
  period              = var.alarm_period_seconds
  evaluation_periods  = var.evaluation_periods
  datapoints_to_alarm = var.datapoints_to_alarm
  threshold           = var.latency_p95_threshold_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  dimensions = {
    Model   = var.model
    Version = each.value
    Track   = each.key
    Route   = var.latency_route
  }

  tags = merge(var.tags, { "inferops/track" = each.key, "inferops/slo" = "latency" })
}

resource "aws_cloudwatch_metric_alarm" "error_rate" {
  for_each = var.tracks

  alarm_name          = "${var.name}-${each.key}-error-rate"
  alarm_description   = "More than ${var.error_rate_threshold_percent}% of the requests to ${var.model} ${each.value} (${each.key}) answered 5xx."
  evaluation_periods  = var.evaluation_periods
  datapoints_to_alarm = var.datapoints_to_alarm
  threshold           = var.error_rate_threshold_percent
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "error_rate"
    label       = "5xx share of requests (%)"
    expression  = "IF(${local.request_sum} >= ${var.error_rate_min_requests}, 100 * ${local.errors_sum} / ${local.request_sum}, 0)"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = var.routes

    content {
      id          = "errors_${metric_query.key}"
      return_data = false

      metric {
        namespace   = var.metric_namespace
        metric_name = "Errors"
        period      = var.alarm_period_seconds
        stat        = "Sum"

        dimensions = {
          Model   = var.model
          Version = each.value
          Track   = each.key
          Route   = metric_query.value
        }
      }
    }
  }

  dynamic "metric_query" {
    for_each = var.routes

    content {
      id          = "requests_${metric_query.key}"
      return_data = false

      metric {
        namespace   = var.metric_namespace
        metric_name = "Requests"
        period      = var.alarm_period_seconds
        stat        = "Sum"

        dimensions = {
          Model   = var.model
          Version = each.value
          Track   = each.key
          Route   = metric_query.value
        }
      }
    }
  }

  tags = merge(var.tags, { "inferops/track" = each.key, "inferops/slo" = "error-rate" })
}

resource "aws_cloudwatch_metric_alarm" "cost" {
  alarm_name          = "${var.name}-cost-per-hour"
  alarm_description   = "${var.model} spent more than ${var.cost_budget_usd_per_hour} USD in an hour (CostUsd over every track and route)."
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  threshold           = var.cost_budget_usd_per_hour
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "cost_per_hour"
    label       = "Cost (USD per hour)"
    expression  = "SUM(FILL([${join(", ", [for s in local.cost_series : s.id])}], 0))"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.cost_series

    content {
      id          = metric_query.value.id
      return_data = false

      metric {
        namespace   = var.metric_namespace
        metric_name = "CostUsd"
        period      = 3600
        stat        = "Sum"

        dimensions = {
          Model   = var.model
          Version = metric_query.value.version
          Track   = metric_query.value.track
          Route   = metric_query.value.route
        }
      }
    }
  }

  tags = merge(var.tags, { "inferops/slo" = "cost" })
}

# --- Dashboard.

locals {
  # title, SEARCH metric name (with any extra dimension in the schema), statistic,
  # period, and an optional horizontal line.
  dashboard_graphs = [
    {
      title     = "Request latency p95 (s), ${var.latency_route}"
      search    = "SEARCH('${local.schema} MetricName=\"RequestDurationSeconds\" ${local.model_filter} Route=\"${var.latency_route}\"', 'p95', 60)"
      period    = 60
      line      = var.latency_p95_threshold_seconds
      linelabel = "p95 alarm threshold"
    },
    {
      title     = "Time to first token p95 (s)"
      search    = "SEARCH('${local.schema} MetricName=\"TimeToFirstTokenSeconds\" ${local.model_filter}', 'p95', 60)"
      period    = 60
      line      = null
      linelabel = null
    },
    {
      title     = "Requests per minute"
      search    = "SEARCH('${local.schema} MetricName=\"Requests\" ${local.model_filter}', 'Sum', 60)"
      period    = 60
      line      = null
      linelabel = null
    },
    {
      title     = "5xx errors per minute"
      search    = "SEARCH('${local.schema} MetricName=\"Errors\" ${local.model_filter}', 'Sum', 60)"
      period    = 60
      line      = null
      linelabel = null
    },
    {
      title     = "Cost (USD per hour)"
      search    = "SEARCH('${local.schema} MetricName=\"CostUsd\" ${local.model_filter}', 'Sum', 3600)"
      period    = 3600
      line      = var.cost_budget_usd_per_hour
      linelabel = "hourly budget"
    },
    {
      title     = "Tokens per minute (input and output)"
      search    = "SEARCH('${local.schema} (MetricName=\"InputTokens\" OR MetricName=\"OutputTokens\") ${local.model_filter}', 'Sum', 60)"
      period    = 60
      line      = null
      linelabel = null
    },
    {
      title     = "Cache hits per minute"
      search    = "SEARCH('{${var.metric_namespace},Model,Version,Track,Route,CacheKind} MetricName=\"CacheHits\" ${local.model_filter}', 'Sum', 60)"
      period    = 60
      line      = null
      linelabel = null
    },
    {
      title     = "In-flight requests (max)"
      search    = "SEARCH('{${var.metric_namespace},Model,Version,Track} MetricName=\"InflightRequests\" ${local.model_filter}', 'Maximum', 60)"
      period    = 60
      line      = null
      linelabel = null
    },
  ]

  dashboard_widgets = concat(
    [
      for i, g in local.dashboard_graphs : {
        type   = "metric"
        x      = (i % 2) * 12
        y      = floor(i / 2) * 6
        width  = 12
        height = 6
        properties = {
          title       = g.title
          region      = local.region
          view        = "timeSeries"
          stacked     = false
          period      = g.period
          metrics     = [[{ expression = g.search, id = "q${i}" }]]
          yAxis       = { left = { min = 0 } }
          annotations = { horizontal = [for h in [{ label = g.linelabel, value = g.line }] : h if h.value != null] }
        }
      }
    ],
    [
      {
        type   = "alarm"
        x      = 0
        y      = ceil(length(local.dashboard_graphs) / 2) * 6
        width  = 24
        height = 4
        properties = {
          title = "Service alarms"
          alarms = concat(
            [for a in aws_cloudwatch_metric_alarm.latency_p95 : a.arn],
            [for a in aws_cloudwatch_metric_alarm.error_rate : a.arn],
            [aws_cloudwatch_metric_alarm.cost.arn],
          )
        }
      },
    ],
  )
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = "${var.name}-service"
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
