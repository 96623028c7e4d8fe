# One dashboard of the service's golden signals and cost, split by release
# track so a canary can be compared with the stable track at a glance.

locals {
  by_track = ["metric.label.track"]

  dashboard_tiles = [
    {
      title = "p95 request duration by track (s)"
      chart = {
        dataSets = [{
          plotType   = "LINE"
          targetAxis = "Y1"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = "metric.type = \"${local.metric_type["request_duration_seconds"]}\" AND ${local.resource_filter}${local.route_filter}"
              aggregation = {
                alignmentPeriod    = "60s"
                perSeriesAligner   = "ALIGN_DELTA"
                crossSeriesReducer = "REDUCE_PERCENTILE_95"
                groupByFields      = local.by_track
              }
            }
          }
        }]
        thresholds = [{ value = var.latency_p95_threshold_seconds, targetAxis = "Y1" }]
        yAxis      = { label = "seconds", scale = "LINEAR" }
      }
    },
    {
      title = "p95 time to first token by track (s)"
      chart = {
        dataSets = [{
          plotType   = "LINE"
          targetAxis = "Y1"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = "metric.type = \"${local.metric_type["time_to_first_token_seconds"]}\" AND ${local.resource_filter}"
              aggregation = {
                alignmentPeriod    = "60s"
                perSeriesAligner   = "ALIGN_DELTA"
                crossSeriesReducer = "REDUCE_PERCENTILE_95"
                groupByFields      = local.by_track
              }
            }
          }
        }]
        yAxis = { label = "seconds", scale = "LINEAR" }
      }
    },
    {
      title = "Requests per second by track"
      chart = {
        dataSets = [{
          plotType   = "STACKED_AREA"
          targetAxis = "Y1"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = "metric.type = \"${local.metric_type["requests"]}\" AND ${local.resource_filter}"
              aggregation = {
                alignmentPeriod    = "60s"
                perSeriesAligner   = "ALIGN_RATE"
                crossSeriesReducer = "REDUCE_SUM"
                groupByFields      = local.by_track
              }
            }
          }
        }]
        yAxis = { label = "requests/s", scale = "LINEAR" }
      }
    },
    {
      title = "5xx ratio by track"
      chart = {
        dataSets = [{
          plotType   = "LINE"
          targetAxis = "Y1"
          timeSeriesQuery = {
            timeSeriesFilterRatio = {
              numerator = {
                filter = "metric.type = \"${local.metric_type["errors"]}\" AND ${local.resource_filter}"
                aggregation = {
                  alignmentPeriod    = "60s"
                  perSeriesAligner   = "ALIGN_RATE"
                  crossSeriesReducer = "REDUCE_SUM"
                  groupByFields      = local.by_track
                }
              }
              denominator = {
                filter = "metric.type = \"${local.metric_type["requests"]}\" AND ${local.resource_filter}"
                aggregation = {
                  alignmentPeriod    = "60s"
                  perSeriesAligner   = "ALIGN_RATE"
                  crossSeriesReducer = "REDUCE_SUM"
                  groupByFields      = local.by_track
                }
              }
            }
          }
        }]
        thresholds = [{ value = var.error_ratio_threshold, targetAxis = "Y1" }]
        yAxis      = { label = "ratio", scale = "LINEAR" }
      }
    },
    {
      title = "Estimated cost (USD/s; budget line = hourly budget / 3600)"
      chart = {
        dataSets = [{
          plotType   = "STACKED_AREA"
          targetAxis = "Y1"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = "metric.type = \"${local.metric_type["cost_usd"]}\" AND ${local.resource_filter}"
              aggregation = {
                alignmentPeriod    = "300s"
                perSeriesAligner   = "ALIGN_RATE"
                crossSeriesReducer = "REDUCE_SUM"
                groupByFields      = local.by_track
              }
            }
          }
        }]
        thresholds = [{ value = var.cost_budget_usd_per_hour / 3600, targetAxis = "Y1" }]
        yAxis      = { label = "USD/s", scale = "LINEAR" }
      }
    },
    {
      title = "Tokens per second (input and output)"
      chart = {
        dataSets = [
          for metric in ["input_tokens", "output_tokens"] : {
            plotType       = "LINE"
            targetAxis     = "Y1"
            legendTemplate = metric
            timeSeriesQuery = {
              timeSeriesFilter = {
                filter = "metric.type = \"${local.metric_type[metric]}\" AND ${local.resource_filter}"
                aggregation = {
                  alignmentPeriod    = "60s"
                  perSeriesAligner   = "ALIGN_RATE"
                  crossSeriesReducer = "REDUCE_SUM"
                  groupByFields      = local.by_track
                }
              }
            }
          }
        ]
        yAxis = { label = "tokens/s", scale = "LINEAR" }
      }
    },
    {
      title = "Cache hits per second by kind"
      chart = {
        dataSets = [{
          plotType   = "STACKED_BAR"
          targetAxis = "Y1"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = "metric.type = \"${local.metric_type["cache_hits"]}\" AND ${local.resource_filter}"
              aggregation = {
                alignmentPeriod    = "60s"
                perSeriesAligner   = "ALIGN_RATE"
                crossSeriesReducer = "REDUCE_SUM"
                groupByFields      = ["metric.label.kind"]
              }
            }
          }
        }]
        yAxis = { label = "hits/s", scale = "LINEAR" }
      }
    },
    {
      title = "In-flight requests by track"
      chart = {
        dataSets = [{
          plotType   = "LINE"
          targetAxis = "Y1"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = "metric.type = \"${local.metric_type["inflight_requests"]}\" AND ${local.resource_filter}"
              aggregation = {
                alignmentPeriod    = "60s"
                perSeriesAligner   = "ALIGN_MEAN"
                crossSeriesReducer = "REDUCE_SUM"
                groupByFields      = local.by_track
              }
            }
          }
        }]
        yAxis = { label = "requests", scale = "LINEAR" }
      }
    },
  ]
}

resource "google_monitoring_dashboard" "this" {
  project = var.project_id

  # Two tiles per row on the 48-column mosaic grid.
  dashboard_json = jsonencode({
    displayName = "${var.name}: inference service"
    mosaicLayout = {
      columns = 48
      tiles = [
        for index, tile in local.dashboard_tiles : {
          xPos   = (index % 2) * 24
          yPos   = floor(index / 2) * 16
          width  = 24
          height = 16
          widget = {
            title   = tile.title
            xyChart = merge({ chartOptions = { mode = "COLOR" } }, tile.chart)
          }
        }
      ]
    }
  })
}
