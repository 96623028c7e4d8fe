# ECR: the registry repository of the inference service's image.
#
# Tags are immutable (a tag names one build forever, and the release pipeline
# deploys by digest), every push is scanned, the images are encrypted with a
# rotating customer-managed KMS key, and a lifecycle policy expires untagged
# layers quickly and keeps only the most recent tagged images.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

resource "aws_kms_key" "this" {
  description             = "Encrypts the images of the ECR repository ${var.repository_name}."
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days

  # ECR uses the key through grants it creates for the account's principals, so
  # the account-administration statement is all the key policy needs.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
    ]
  })

  tags = merge(var.tags, { Name = "${replace(var.repository_name, "/", "-")}-ecr" })
}

resource "aws_kms_alias" "this" {
  name          = "alias/${replace(var.repository_name, "/", "-")}-ecr"
  target_key_id = aws_kms_key.this.key_id
}

resource "aws_ecr_repository" "this" {
  name                 = var.repository_name
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.force_delete

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.this.arn
  }

  tags = var.tags
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name

  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Expire untagged images ${var.untagged_expiry_days} days after their push."
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = var.untagged_expiry_days
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the ${var.keep_image_count} most recent images."
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.keep_image_count
        }
        action = { type = "expire" }
      },
    ]
  })
}
