/**
 * Typed views of the service's answers, parsed from the vendor envelope's `veritem`
 * descriptions. Every result keeps its `envelope` and `detail`, so nothing the
 * service said is lost when a field is not modelled here.
 */
export const LIVE = "Living body";
export const NOT_LIVE = "Non-living body";
function items(envelope) {
    const info = envelope.infoList?.[0] ?? {};
    return (info.veritem ?? []).map((i) => [String(i.desc ?? ""), String(i.content ?? "")]);
}
function detailOf(envelope) {
    const detail = envelope.detail;
    return detail && typeof detail === "object" && !Array.isArray(detail) ? detail : {};
}
function prefixed(list, prefix) {
    const hit = list.find(([d]) => d.startsWith(prefix));
    return hit ? hit[0].slice(prefix.length) : undefined;
}
export function parseFaceComparison(envelope) {
    const list = items(envelope);
    const verdict = prefixed(list, "Decision result:");
    const value = prefixed(list, "Decision value:");
    if ((verdict !== "yes" && verdict !== "no") || value === undefined) {
        throw new TypeError("not a face-comparison answer");
    }
    return { kind: "face_comparison", verdict, samePerson: verdict === "yes",
        value: Number(value), reasons: [], detail: detailOf(envelope), envelope };
}
export function parseSilentLiveness(envelope) {
    const list = items(envelope);
    const verdict = list.map(([d]) => d).find((d) => d === LIVE || d === NOT_LIVE);
    const value = prefixed(list, "Decision value:");
    if (verdict === undefined || value === undefined) {
        throw new TypeError("not a silent-liveness answer");
    }
    const live = verdict === LIVE;
    return { kind: "silent_liveness", verdict, live, value: Number(value),
        reasons: live ? [] : ["silent liveness: presentation attack suspected"],
        detail: detailOf(envelope), envelope };
}
function videoFields(envelope) {
    const map = new Map(items(envelope));
    const verdict = map.get("Live or not");
    if (verdict === undefined)
        throw new TypeError("not a video-liveness answer");
    const detail = detailOf(envelope);
    const cues = (Array.isArray(detail.events) ? detail.events : [])
        .filter((e) => e && typeof e === "object")
        .map(({ kind, t, ...measures }) => ({ kind: String(kind ?? ""), t: Number(t ?? 0),
        measures }));
    return {
        verdict,
        live: verdict === LIVE,
        value: Number(map.get("Decision value") || 0),
        replaced: map.get("Whether there is a replacement") === "yes",
        blinked: map.get("Whether there is blinking") === "yes",
        mouthMoved: map.get("Whether there is a mouth") === "yes",
        reasons: (Array.isArray(detail.reasons) ? detail.reasons : []).map(String),
        cues,
        detail,
        envelope,
    };
}
export function parseVideoLiveness(envelope) {
    return { kind: "video_liveness", ...videoFields(envelope) };
}
/** typeId 3035: the answer's shape says whether the service saw an image or a video. */
export function parseLiveness(envelope) {
    return items(envelope).some(([d]) => d === "Live or not")
        ? parseVideoLiveness(envelope) : parseSilentLiveness(envelope);
}
export function parseSessionResult(envelope) {
    const comparison = items(envelope).some(([d]) => d.startsWith("Decision result:"))
        ? parseFaceComparison(envelope) : null;
    const fields = videoFields(envelope);
    const challenges = (Array.isArray(fields.detail.challenges) ? fields.detail.challenges : [])
        .filter((c) => c && typeof c === "object");
    return { kind: "session", ...fields, comparison, challenges,
        passed: fields.live && (comparison === null || comparison.samePerson) };
}
