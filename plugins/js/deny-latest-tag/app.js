// Keelson admission plugin in JavaScript: refuses Pods and workload templates
// whose container images use the `:latest` tag or no tag at all (which means
// `latest`). Images pinned by digest (`name@sha256:…`) are allowed.
//
// The JavaScript twin of plugins/examples/deny-latest-tag (Rust), built with
// jco componentize (ComponentizeJS) against the WIT world `admission` in wit/.

/** JSON Pointer path (as keys) of the pod spec inside an object of `kind`. */
const POD_SPEC_PATH = {
  Pod: ["spec"],
  PodTemplate: ["template", "spec"],
  Deployment: ["spec", "template", "spec"],
  ReplicaSet: ["spec", "template", "spec"],
  StatefulSet: ["spec", "template", "spec"],
  DaemonSet: ["spec", "template", "spec"],
  Job: ["spec", "template", "spec"],
  ReplicationController: ["spec", "template", "spec"],
  CronJob: ["spec", "jobTemplate", "spec", "template", "spec"],
};

const allow = () => ({ allowed: true, message: "", code: 0, warnings: [] });
const deny = (message, code = 0) => ({ allowed: false, message, code, warnings: [] });

/** All containers of `object`: init, regular and ephemeral. */
function containers(kind, object) {
  const path = Object.hasOwn(POD_SPEC_PATH, kind) ? POD_SPEC_PATH[kind] : null;
  if (!path) return [];
  let spec = object;
  for (const key of path) {
    spec = spec && typeof spec === "object" ? spec[key] : undefined;
  }
  if (!spec || typeof spec !== "object") return [];
  const out = [];
  for (const list of ["initContainers", "containers", "ephemeralContainers"]) {
    if (Array.isArray(spec[list])) out.push(...spec[list]);
  }
  return out;
}

/** Why `image` floats, or null when it is pinned. */
function unpinned(image) {
  if (image.includes("@")) return null;
  // The tag follows the last ':' after the last '/' (a ':' before it is a registry port).
  const last = image.slice(image.lastIndexOf("/") + 1);
  const colon = last.lastIndexOf(":");
  if (colon < 0) return "has no tag (means :latest)";
  const tag = last.slice(colon + 1);
  if (tag === "latest") return "uses :latest";
  if (tag === "") return "has an empty tag";
  return null;
}

export function validate(req) {
  if ((req.operation !== "create" && req.operation !== "update") || req.subresource !== "") {
    return allow();
  }
  let object;
  try {
    object = req.object ? JSON.parse(req.object) : null;
  } catch {
    return allow();
  }
  if (!object || typeof object !== "object") return allow();
  const problems = [];
  for (const c of containers(req.kind, object)) {
    const name = typeof c?.name === "string" ? c.name : "";
    const image = typeof c?.image === "string" ? c.image : "";
    const why = unpinned(image);
    if (why) {
      problems.push(`container ${JSON.stringify(name)} image ${JSON.stringify(image)} ${why}`);
    }
  }
  if (problems.length === 0) return allow();
  return deny(`${problems.join("; ")}; pin a version tag or digest`);
}

// Validation only: let every request through unchanged.
export function mutate(_req) {
  return { verdict: allow(), patch: undefined };
}
