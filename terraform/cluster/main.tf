# The EKS control plane: Kubernetes 1.33, authentication by EKS access
# entries only (authentication_mode API: no aws-auth ConfigMap), Secrets
# encrypted with a KMS key of its own, control-plane logs with a retention,
# standard support only (extended support costs six times as much per hour).

resource "aws_kms_key" "eks" {
  description             = "Envelope encryption of Kubernetes Secrets in EKS cluster ${var.cluster_name}"
  enable_key_rotation     = true
  deletion_window_in_days = 7
}

resource "aws_kms_alias" "eks" {
  name          = "alias/${var.cluster_name}-eks-secrets"
  target_key_id = aws_kms_key.eks.key_id
}

# Created before the cluster, so EKS does not create it without a retention.
resource "aws_cloudwatch_log_group" "eks" {
  name              = "/aws/eks/${var.cluster_name}/cluster"
  retention_in_days = var.cluster_log_retention_days
}

resource "aws_eks_cluster" "this" {
  name     = var.cluster_name
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster.arn

  enabled_cluster_log_types = ["api", "audit", "authenticator"]

  # vpc-cni, kube-proxy and CoreDNS come as managed add-ons (addons.tf),
  # versioned and owned by this stack, not as unmanaged defaults.
  bootstrap_self_managed_addons = false

  access_config {
    authentication_mode = "API"
    # The identity running `terraform apply` becomes cluster admin, so the
    # platform stack (run by the same identity) can install charts.
    bootstrap_cluster_creator_admin_permissions = true
  }

  vpc_config {
    subnet_ids              = aws_subnet.private[*].id
    endpoint_private_access = true
    endpoint_public_access  = true
    public_access_cidrs     = var.endpoint_public_access_cidrs
  }

  encryption_config {
    resources = ["secrets"]

    provider {
      key_arn = aws_kms_key.eks.arn
    }
  }

  upgrade_policy {
    support_type = "STANDARD"
  }

  depends_on = [
    aws_iam_role_policy_attachment.cluster,
    aws_cloudwatch_log_group.eks,
    # Nodes reach the internet (ECR, EKS API) only once the routes exist.
    aws_route.private_nat,
    aws_route_table_association.private,
  ]
}
