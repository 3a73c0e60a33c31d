output "cluster_name" {
  description = "Name of the EKS cluster: the platform stack's cluster_name."
  value       = aws_eks_cluster.this.name
}

output "region" {
  description = "Region of the cluster: the platform stack's region."
  value       = var.region
}

output "platform_tfvars" {
  description = "The platform stack's inputs, ready for terraform/platform/terraform.tfvars."
  value       = "cluster_name = \"${aws_eks_cluster.this.name}\"\nregion       = \"${var.region}\"\n"
}

output "cluster_endpoint" {
  description = "HTTPS endpoint of the Kubernetes API."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA bundle of the Kubernetes API."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "kubeconfig_command" {
  description = "Writes a kubeconfig entry for this cluster (authenticating with aws eks get-token)."
  value       = "aws eks update-kubeconfig --region ${var.region} --name ${aws_eks_cluster.this.name}"
}

output "default_storage_class" {
  description = "The default StorageClass (gp3, created by the EBS CSI add-on); PVCs that name no class get it."
  value       = local.default_storage_class
}

output "cluster_security_group_id" {
  description = "Security group EKS created for the control plane and the managed nodes."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Private subnets (nodes, pods, internal load balancers)."
  value       = aws_subnet.private[*].id
}

output "public_subnet_ids" {
  description = "Public subnets (internet-facing load balancers, NAT gateways)."
  value       = aws_subnet.public[*].id
}

output "node_role_arn" {
  description = "IAM role of the nodes."
  value       = aws_iam_role.node.arn
}
