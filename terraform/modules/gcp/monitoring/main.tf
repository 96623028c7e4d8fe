# Cloud Monitoring for the inference service: the descriptors of the custom
# metrics it writes (custom.googleapis.com/inferops/*, on the generic_task
# resource with job "inferops-service"), alert policies on them (p95 latency,
# error ratio, cost per hour against a budget), an optional e-mail
# notification channel and a dashboard.
#
# The descriptors mirror what the service's exporter writes (kind, value type,
# unit, labels); declaring them up front lets the alert policies be created
# before the service has written its first point. Custom metrics take no DELTA
# kind, so counts and distributions are CUMULATIVE and the policies align them
# with ALIGN_DELTA / ALIGN_RATE.

locals {
  metric_prefix = "custom.googleapis.com/inferops/"

  # Every series of the service: its resource is a generic_task of this job.
  resource_filter = "resource.type = \"generic_task\" AND resource.label.job = \"${var.job}\" AND resource.label.namespace = \"${var.namespace}\""
  route_filter    = var.latency_route == "" ? "" : " AND metric.label.route = \"${var.latency_route}\""

  label_descriptions = {
    model   = "Model the replica serves."
    version = "Version (build) of the service."
    track   = "Release track of the replica: stable or canary."
    route   = "Route template of the request, such as /v1/chat/completions, or other."
    kind    = "Kind of cache that answered (exact or semantic)."
  }

  identity_labels = ["model", "version", "track"]

  metrics = {
    requests = {
      display_name = "inferops requests"
      description  = "HTTP requests answered, all statuses, counted since the replica's first reading."
      metric_kind  = "CUMULATIVE"
      value_type   = "INT64"
      unit         = "1"
      labels       = ["route"]
    }
    errors = {
      display_name = "inferops server errors"
      description  = "HTTP requests answered with a 5xx status, counted since the replica's first reading."
      metric_kind  = "CUMULATIVE"
      value_type   = "INT64"
      unit         = "1"
      labels       = ["route"]
    }
    request_duration_seconds = {
      display_name = "inferops request duration"
      description  = "Distribution of request durations in seconds, all statuses merged."
      metric_kind  = "CUMULATIVE"
      value_type   = "DISTRIBUTION"
      unit         = "s"
      labels       = ["route"]
    }
    time_to_first_token_seconds = {
      display_name = "inferops time to first token"
      description  = "Distribution of the time to the first streamed token, in seconds, of successful completions."
      metric_kind  = "CUMULATIVE"
      value_type   = "DISTRIBUTION"
      unit         = "s"
      labels       = ["route"]
    }
    input_tokens = {
      display_name = "inferops input tokens"
      description  = "Prompt tokens of completed completions."
      metric_kind  = "CUMULATIVE"
      value_type   = "INT64"
      unit         = "1"
      labels       = ["route"]
    }
    output_tokens = {
      display_name = "inferops output tokens"
      description  = "Generated tokens of completed completions."
      metric_kind  = "CUMULATIVE"
      value_type   = "INT64"
      unit         = "1"
      labels       = ["route"]
    }
    cost_usd = {
      display_name = "inferops cost"
      description  = "Estimated cost in USD of completed completions."
      metric_kind  = "CUMULATIVE"
      value_type   = "DOUBLE"
      unit         = "{USD}"
      labels       = ["route"]
    }
    cache_hits = {
      display_name = "inferops cache hits"
      description  = "Chat completions answered from the cache, by cache kind."
      metric_kind  = "CUMULATIVE"
      value_type   = "INT64"
      unit         = "1"
      labels       = ["route", "kind"]
    }
    cache_saved_usd = {
      display_name = "inferops cache savings"
      description  = "Estimated cost in USD that cache hits saved, by cache kind."
      metric_kind  = "CUMULATIVE"
      value_type   = "DOUBLE"
      unit         = "{USD}"
      labels       = ["route", "kind"]
    }
    inflight_requests = {
      display_name = "inferops in-flight requests"
      description  = "Requests being served by the replica at the time of the reading."
      metric_kind  = "GAUGE"
      value_type   = "DOUBLE"
      unit         = "1"
      labels       = []
    }
  }

  # Metric types as the policies and the dashboard use them; through the
  # descriptors when this module creates them, so the policies wait for them.
  metric_type = {
    for metric, _ in local.metrics : metric => (
      var.create_metric_descriptors ? google_monitoring_metric_descriptor.this[metric].type : "${local.metric_prefix}${metric}"
    )
  }

  notification_channels = concat(
    google_monitoring_notification_channel.email[*].id,
    var.notification_channel_ids,
  )

  user_labels = merge(var.labels, {
    app        = "inferops"
    managed_by = "terraform"
  })

  window        = "${var.alert_window_seconds}s"
  error_percent = format("%.4g", var.error_ratio_threshold * 100)
}

resource "google_monitoring_metric_descriptor" "this" {
  for_each = var.create_metric_descriptors ? local.metrics : {}

  project      = var.project_id
  type         = "${local.metric_prefix}${each.key}"
  display_name = each.value.display_name
  description  = each.value.description
  metric_kind  = each.value.metric_kind
  value_type   = each.value.value_type
  unit         = each.value.unit

  dynamic "labels" {
    for_each = concat(local.identity_labels, each.value.labels)
    content {
      key         = labels.value
      value_type  = "STRING"
      description = local.label_descriptions[labels.value]
    }
  }
}

resource "google_monitoring_notification_channel" "email" {
  count = var.notification_email == null ? 0 : 1

  project      = var.project_id
  display_name = "${var.name} on-call (e-mail)"
  description  = "Receives the ${var.name} inference service alerts."
  type         = "email"

  labels = {
    email_address = var.notification_email
  }

  user_labels = local.user_labels
}

resource "google_monitoring_alert_policy" "latency_p95" {
  project               = var.project_id
  display_name          = "${var.name}: p95 latency above ${var.latency_p95_threshold_seconds}s"
  combiner              = "OR"
  enabled               = var.alerts_enabled
  severity              = "ERROR"
  notification_channels = local.notification_channels
  user_labels           = local.user_labels

  conditions {
    display_name = "p95 request duration per track > ${var.latency_p95_threshold_seconds}s"

    condition_threshold {
      filter          = "metric.type = \"${local.metric_type["request_duration_seconds"]}\" AND ${local.resource_filter}${local.route_filter}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.latency_p95_threshold_seconds
      duration        = local.window

      # Per-replica increments of the distribution, merged per track, and the
      # 95th percentile of the merged distribution.
      aggregations {
        alignment_period     = local.window
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_95"
        group_by_fields      = ["metric.label.track"]
      }

      trigger {
        count = 1
      }

      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The 95th percentile of ${var.latency_route == "" ? "all requests" : "`${var.latency_route}`"} durations of a release track stayed above ${var.latency_p95_threshold_seconds}s for ${var.alert_window_seconds / 60} minutes.

      - A canary track: the release pipeline rolls it back on its own; check `inferops status --env <env>`.
      - The stable track: check GPU node capacity (Spot preemptions, pending pods) and the in-flight requests on the dashboard.
    EOT
  }
}

resource "google_monitoring_alert_policy" "error_ratio" {
  project               = var.project_id
  display_name          = "${var.name}: 5xx ratio above ${local.error_percent}%"
  combiner              = "OR"
  enabled               = var.alerts_enabled
  severity              = "CRITICAL"
  notification_channels = local.notification_channels
  user_labels           = local.user_labels

  conditions {
    display_name = "5xx / all requests per track > ${var.error_ratio_threshold}"

    condition_threshold {
      filter          = "metric.type = \"${local.metric_type["errors"]}\" AND ${local.resource_filter}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.error_ratio_threshold
      duration        = local.window

      aggregations {
        alignment_period     = local.window
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.track"]
      }

      denominator_filter = "metric.type = \"${local.metric_type["requests"]}\" AND ${local.resource_filter}"

      denominator_aggregations {
        alignment_period     = local.window
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.track"]
      }

      trigger {
        count = 1
      }

      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      More than ${local.error_percent}% of a release track's requests failed with a 5xx status for ${var.alert_window_seconds / 60} minutes.

      - A canary track: the release pipeline rolls it back on its own; check `inferops status --env <env>`.
      - The stable track: check the service logs in Cloud Logging and recent rollouts in the GitOps history (`inferops history`).
    EOT
  }
}

resource "google_monitoring_alert_policy" "cost_per_hour" {
  project               = var.project_id
  display_name          = "${var.name}: cost above ${var.cost_budget_usd_per_hour} USD/hour"
  combiner              = "OR"
  enabled               = var.alerts_enabled
  severity              = "WARNING"
  notification_channels = local.notification_channels
  user_labels           = local.user_labels

  conditions {
    display_name = "Estimated inference cost rate > ${var.cost_budget_usd_per_hour} USD/hour"

    condition_threshold {
      filter     = "metric.type = \"${local.metric_type["cost_usd"]}\" AND ${local.resource_filter}"
      comparison = "COMPARISON_GT"
      # ALIGN_RATE yields USD per second: the hourly budget is divided by 3600.
      threshold_value = var.cost_budget_usd_per_hour / 3600
      duration        = "${var.cost_window_seconds}s"

      aggregations {
        alignment_period     = "${var.cost_window_seconds}s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }

      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The service's estimated inference cost, summed over all replicas and tracks, ran above the budget of ${var.cost_budget_usd_per_hour} USD per hour for ${var.cost_window_seconds / 60} minutes.

      - Check the request and token rates on the dashboard for a traffic surge or a runaway client.
      - Check the cache hit rate: a drop makes every request pay full price.
    EOT
  }
}
