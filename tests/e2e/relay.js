// The importer's relay function (nodejs20, ali-oss as FC preinstalls it). Copying: presigned
// https URLs of other regions into the region's bucket through the internal endpoint, checked
// by SHA-256. Emptying: the bucket's objects and unfinished uploads, from inside the region.
const crypto = require('crypto');
const OSS = require('ali-oss');

function bucketClient(context, bucket) {
  const c = context.credentials;
  return new OSS({
    region: `oss-${context.region}`, internal: true, secure: true, bucket,
    accessKeyId: c.accessKeyId, accessKeySecret: c.accessKeySecret, stsToken: c.securityToken,
    timeout: 120000,
  });
}

async function empty(client) {
  let deleted = 0;
  let marker;
  do {
    const page = await client.list({ marker, 'max-keys': 1000 });
    const names = (page.objects || []).map((o) => o.name);
    if (names.length) await client.deleteMulti(names, { quiet: true });
    deleted += names.length;
    marker = page.nextMarker;
  } while (marker);
  const open = await client.listUploads({});
  for (const upload of open.uploads || []) {
    await client.abortMultipartUpload(upload.name, upload.uploadId);
  }
  return { deleted };
}

exports.handler = async (event, context) => {
  const job = JSON.parse(event.toString());
  const client = bucketClient(context, job.bucket);
  if (job.empty) return empty(client);
  for (const url of job.sources) {
    try {
      const res = await fetch(url);
      if (res.status !== 200) { console.warn('source answered', res.status); continue; }
      const data = Buffer.from(await res.arrayBuffer());
      const digest = crypto.createHash('sha256').update(data).digest('hex');
      if (digest !== job.sha256) { console.warn('source sent other bytes'); continue; }
      const stored = await client.put(job.key, data);
      return { status: stored.res.status, size: data.length };
    } catch (e) {
      console.warn('source failed:', String(e.cause || e));
    }
  }
  throw new Error('no source delivered the image');
};
