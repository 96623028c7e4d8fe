output "service_role_arn" {
  description = "ARN of the inference service's role; annotate its ServiceAccount with eks.amazonaws.com/role-arn set to this."
  value       = aws_iam_role.service.arn
}

output "service_role_name" {
  description = "Name of the inference service's role."
  value       = aws_iam_role.service.name
}

output "pipeline_role_arn" {
  description = "ARN of the release pipeline's role; annotate its ServiceAccount with eks.amazonaws.com/role-arn set to this."
  value       = aws_iam_role.pipeline.arn
}

output "pipeline_role_name" {
  description = "Name of the release pipeline's role."
  value       = aws_iam_role.pipeline.name
}
