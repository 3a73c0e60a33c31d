# EKS managed add-ons, each at a pinned version. vpc-cni, kube-proxy and the
# Pod Identity agent come before the nodes; CoreDNS and the EBS CSI driver
# need running nodes to become ACTIVE, so they come after.
#
# The gp3 default StorageClass comes from the EBS CSI add-on itself
# (defaultStorageClass.enabled): the add-on creates `ebs-csi-default-sc`,
# annotated as the cluster default, volumeBindingMode WaitForFirstConsumer,
# expansion allowed, and the driver's default volume type, gp3. EKS marks no
# other StorageClass as default on 1.30 and later. Creating it here keeps the
# Kubernetes provider out of this stack (see terraform/README.md), and the
# Kafka volumes of the platform stack find a default class as soon as the
# driver that serves it exists.

locals {
  default_storage_class = "ebs-csi-default-sc"
}

resource "aws_eks_addon" "vpc_cni" {
  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = "vpc-cni"
  addon_version               = var.addon_versions.vpc_cni
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
}

resource "aws_eks_addon" "kube_proxy" {
  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = "kube-proxy"
  addon_version               = var.addon_versions.kube_proxy
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
}

resource "aws_eks_addon" "pod_identity_agent" {
  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = "eks-pod-identity-agent"
  addon_version               = var.addon_versions.pod_identity_agent
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
}

resource "aws_eks_addon" "coredns" {
  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = "coredns"
  addon_version               = var.addon_versions.coredns
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  depends_on = [aws_eks_node_group.general]
}

resource "aws_eks_addon" "ebs_csi_driver" {
  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = "aws-ebs-csi-driver"
  addon_version               = var.addon_versions.ebs_csi_driver
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  configuration_values = jsonencode({
    defaultStorageClass = { enabled = true }
  })

  # The controller's service account gets the role through EKS Pod Identity.
  pod_identity_association {
    role_arn        = aws_iam_role.ebs_csi.arn
    service_account = "ebs-csi-controller-sa"
  }

  depends_on = [
    aws_eks_node_group.general,
    aws_iam_role_policy_attachment.ebs_csi,
  ]
}
