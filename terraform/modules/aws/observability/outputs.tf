output "sns_topic_arn" {
  description = "ARN of the SNS topic the alarms notify; subscribe pagers and chat hooks to it."
  value       = aws_sns_topic.alarms.arn
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard of the service."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "alarm_name_prefix" {
  description = "Prefix every alarm of the service carries (<name>-); the pipeline may manage alarms with this prefix."
  value       = "${var.name}-"
}

output "alarm_names" {
  description = "Names of the alarms: latency and error_rate by track, and cost."
  value = {
    latency_p95 = { for track, a in aws_cloudwatch_metric_alarm.latency_p95 : track => a.alarm_name }
    error_rate  = { for track, a in aws_cloudwatch_metric_alarm.error_rate : track => a.alarm_name }
    cost        = aws_cloudwatch_metric_alarm.cost.alarm_name
  }
}

output "log_group_names" {
  description = "Names of the log groups, by purpose (application, dataplane, host, performance, service)."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.name }
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the log groups and the alarm topic."
  value       = aws_kms_key.this.arn
}
