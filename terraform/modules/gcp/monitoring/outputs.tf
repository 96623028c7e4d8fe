output "dashboard_id" {
  description = "ID of the dashboard (projects/PROJECT_NUMBER/dashboards/ID)."
  value       = google_monitoring_dashboard.this.id
}

output "alert_policy_ids" {
  description = "IDs of the alert policies (projects/PROJECT/alertPolicies/ID), by purpose."
  value = {
    latency_p95   = google_monitoring_alert_policy.latency_p95.name
    error_ratio   = google_monitoring_alert_policy.error_ratio.name
    cost_per_hour = google_monitoring_alert_policy.cost_per_hour.name
  }
}

output "notification_channel_ids" {
  description = "IDs of the notification channels the alert policies notify."
  value       = local.notification_channels
}

output "metric_types" {
  description = "Metric types of the service's custom metrics, by metric name."
  value       = local.metric_type
}
