# Everything the releases install, as data: chart versions, namespaces, value
# files, the Strimzi resources read from deploy/ and the chart path. This
# file uses no provider, so tests/platform/test_60_terraform.sh evaluates it
# with `terraform console` and checks the result against what
# tests/platform/test_20_apiserver.sh installs into a real API server.

locals {
  repo_root = "${path.module}/../.."

  # Upstream charts, pinned.
  strimzi = {
    release    = "strimzi-kafka-operator"
    namespace  = "kafka"
    repository = "oci://quay.io/strimzi-helm"
    chart      = "strimzi-kafka-operator"
    version    = "1.2.0"
    values     = [file("${path.module}/values/strimzi-kafka-operator.yaml")]
  }

  # The release name is the `release` label kube-prometheus-stack's
  # Prometheus selects ServiceMonitors and PrometheusRules by (its
  # *SelectorNilUsesHelmValues defaults), and the prefix of its services.
  kube_prometheus_stack = {
    release    = "kube-prometheus-stack"
    namespace  = "monitoring"
    repository = "https://prometheus-community.github.io/helm-charts"
    chart      = "kube-prometheus-stack"
    version    = "88.5.3"
    values     = [file("${path.module}/values/kube-prometheus-stack.yaml")]
  }

  opencost = {
    release    = "opencost"
    namespace  = "opencost"
    repository = "https://opencost.github.io/opencost-helm-chart"
    chart      = "opencost"
    version    = "2.5.29"
    values = [
      file("${path.module}/values/opencost.yaml"),
      yamlencode({ opencost = { exporter = { defaultClusterId = var.cluster_name } } }),
    ]
  }

  # deploy/*.yaml, every document of every file, installed unchanged through
  # the small pass-through chart in charts/strimzi-resources (a Helm release,
  # not kubernetes_manifest: that one needs the Strimzi CRDs at plan time,
  # which do not exist before the operator's release is applied).
  deploy_dir   = "${local.repo_root}/deploy"
  deploy_files = sort(fileset(local.deploy_dir, "*.yaml"))
  deploy_documents = flatten([
    for f in local.deploy_files : [
      for doc in split("\n---", file("${local.deploy_dir}/${f}")) : doc
      if can(regex("(?m)^apiVersion:", doc))
    ]
  ])
  strimzi_manifests = [for doc in local.deploy_documents : yamldecode(doc)]
  kafka_cluster     = one([for m in local.strimzi_manifests : m.metadata.name if m.kind == "Kafka"])

  strimzi_resources = {
    release   = "ai-finops-kafka"
    namespace = local.strimzi.namespace
    chart     = "${path.module}/charts/strimzi-resources"
    values    = [yamlencode({ manifests = local.strimzi_manifests })]
  }

  # This project's chart, from the source tree.
  exporter = {
    release   = "ai-finops-exporter"
    namespace = "ai-finops"
    chart     = "${local.repo_root}/helm/ai-finops-exporter"
    values = [
      file("${path.module}/values/ai-finops-exporter.yaml"),
      yamlencode({
        image = {
          repository = var.exporter_image_repository
          tag        = var.exporter_image_tag
        }
        kafkaCluster = {
          name      = local.kafka_cluster
          namespace = local.strimzi.namespace
        }
        serviceMonitor = {
          releaseLabel = local.kube_prometheus_stack.release
        }
        # Grafana's dashboard sidecar watches its own namespace.
        grafanaDashboard = {
          namespace = local.kube_prometheus_stack.namespace
        }
      }),
    ]
  }
}
