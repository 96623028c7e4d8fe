output "repository_name" {
  description = "Name of the ECR repository."
  value       = aws_ecr_repository.this.name
}

output "repository_arn" {
  description = "ARN of the ECR repository."
  value       = aws_ecr_repository.this.arn
}

output "repository_url" {
  description = "URL to tag and push the service image to (<account>.dkr.ecr.<region>.amazonaws.com/<name>)."
  value       = aws_ecr_repository.this.repository_url
}

output "registry_id" {
  description = "ID of the registry (the account) that holds the repository."
  value       = aws_ecr_repository.this.registry_id
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the repository's images."
  value       = aws_kms_key.this.arn
}
