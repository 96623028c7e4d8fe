output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "IPv4 range of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "availability_zones" {
  description = "Availability zones the network spans, in subnet order."
  value       = local.azs
}

output "public_subnet_ids" {
  description = "IDs of the public subnets (internet-facing load balancers), one per zone, in zone order."
  value       = [for az in local.azs : aws_subnet.public[az].id]
}

output "private_subnet_ids" {
  description = "IDs of the private subnets (nodes, pods, internal load balancers), one per zone, in zone order."
  value       = [for az in local.azs : aws_subnet.private[az].id]
}

output "nat_gateway_ids" {
  description = "IDs of the NAT gateways, one per zone, in zone order."
  value       = [for az in local.azs : aws_nat_gateway.this[az].id]
}

output "nat_public_ips" {
  description = "Public addresses the private subnets reach the internet from (allow-list these at third parties)."
  value       = [for az in local.azs : aws_eip.nat[az].public_ip]
}

output "private_route_table_ids" {
  description = "IDs of the private route tables, one per zone, in zone order."
  value       = [for az in local.azs : aws_route_table.private[az].id]
}

output "flow_log_group_name" {
  description = "Name of the CloudWatch log group that receives the VPC flow logs."
  value       = aws_cloudwatch_log_group.flow_logs.name
}
