# The platform on the cluster of terraform/cluster, in dependency order:
#
#   strimzi-kafka-operator ──> ai-finops-kafka (deploy/: Kafka, node pool, topics) ──┐
#   kube-prometheus-stack ──> opencost                                               ├──> ai-finops-exporter
#   kube-prometheus-stack (ServiceMonitor/PrometheusRule CRDs, Grafana) ─────────────┘
#
# Every release's chart, version, namespace and values come from locals.tf.

resource "helm_release" "strimzi" {
  name             = local.strimzi.release
  namespace        = local.strimzi.namespace
  create_namespace = true
  repository       = local.strimzi.repository
  chart            = local.strimzi.chart
  version          = local.strimzi.version
  values           = local.strimzi.values
  wait             = true
  timeout          = 600
}

resource "helm_release" "kafka" {
  name      = local.strimzi_resources.release
  namespace = local.strimzi_resources.namespace
  chart     = local.strimzi_resources.chart
  values    = local.strimzi_resources.values
  # Custom resources: Helm has nothing to wait for; the operator reconciles
  # them (brokers up in a few minutes) and the exporter's readiness waits.
  wait = false

  # The Kafka CRDs and the operator come with the operator's release.
  depends_on = [helm_release.strimzi]
}

resource "helm_release" "kube_prometheus_stack" {
  name             = local.kube_prometheus_stack.release
  namespace        = local.kube_prometheus_stack.namespace
  create_namespace = true
  repository       = local.kube_prometheus_stack.repository
  chart            = local.kube_prometheus_stack.chart
  version          = local.kube_prometheus_stack.version
  values           = local.kube_prometheus_stack.values
  wait             = true
  timeout          = 900
}

resource "helm_release" "opencost" {
  name             = local.opencost.release
  namespace        = local.opencost.namespace
  create_namespace = true
  repository       = local.opencost.repository
  chart            = local.opencost.chart
  version          = local.opencost.version
  values           = local.opencost.values
  wait             = true
  timeout          = 600

  # Queries that Prometheus; its ServiceMonitor needs the operator's CRDs.
  depends_on = [helm_release.kube_prometheus_stack]
}

resource "helm_release" "exporter" {
  name             = local.exporter.release
  namespace        = local.exporter.namespace
  create_namespace = true
  chart            = local.exporter.chart
  values           = local.exporter.values
  # Ready only once Kafka is up and the pods own partitions (/readyz): the
  # wait covers the brokers' start.
  wait    = true
  timeout = 1200

  depends_on = [
    helm_release.kafka,
    # ServiceMonitor and PrometheusRule CRDs, and the namespace of the
    # dashboard ConfigMap.
    helm_release.kube_prometheus_stack,
  ]
}
