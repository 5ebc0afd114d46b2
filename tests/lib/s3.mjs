// Reading back what the browser stored, through the S3 API of the store itself.
import { createHash } from 'node:crypto';
import {
  S3Client, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand,
  CreateBucketCommand, PutBucketCorsCommand,
} from '@aws-sdk/client-s3';

export function s3Client({ endpoint, accessKeyId, secretAccessKey, region = 'us-east-1' }) {
  return new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** SHA-256 (hex) and size of an object, streamed. */
export async function objectSha256(client, Bucket, Key) {
  const { Body } = await client.send(new GetObjectCommand({ Bucket, Key }));
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of Body) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

/**
 * The object's checksum as the store keeps it, `algo:BASE64[-N]` (composite for a multipart
 * upload created with that algorithm), or undefined when it keeps none.
 */
export async function storedChecksum(client, Bucket, Key) {
  const head = await client.send(new HeadObjectCommand({ Bucket, Key, ChecksumMode: 'ENABLED' }));
  const names = { ChecksumCRC32: 'crc32', ChecksumCRC32C: 'crc32c', ChecksumSHA256: 'sha256' };
  for (const [field, algorithm] of Object.entries(names)) {
    if (head[field]) return `${algorithm}:${head[field]}`;
  }
  return undefined;
}

export async function objectExists(client, Bucket, Key) {
  try {
    await client.send(new HeadObjectCommand({ Bucket, Key }));
    return true;
  } catch (err) {
    if (err.$metadata?.httpStatusCode === 404) return false;
    throw err;
  }
}

/** Incomplete multipart uploads under `Prefix` (stores that implement ListMultipartUploads). */
export async function listUploads(client, Bucket, Prefix) {
  const out = await client.send(new ListMultipartUploadsCommand({ Bucket, Prefix }));
  return out.Uploads ?? [];
}

/** Creates a bucket with the CORS rule browsers need: PUT from any origin, ETag readable. */
export async function createBucketForBrowsers(client, Bucket) {
  await client.send(new CreateBucketCommand({ Bucket }));
  await client.send(new PutBucketCorsCommand({
    Bucket,
    CORSConfiguration: {
      CORSRules: [{
        AllowedOrigins: ['*'],
        AllowedMethods: ['GET', 'PUT', 'POST', 'HEAD', 'DELETE'],
        AllowedHeaders: ['*'],
        ExposeHeaders: ['ETag'],
        MaxAgeSeconds: 3600,
      }],
    },
  }));
}

/**
 * Sets the CORS rule browsers need on an existing bucket (PUT from any origin, ETag readable),
 * for stores whose test user may not create buckets (Garage's imported key).
 */
export async function allowBrowsers(client, Bucket) {
  await client.send(new PutBucketCorsCommand({
    Bucket,
    CORSConfiguration: {
      CORSRules: [{
        AllowedOrigins: ['*'],
        AllowedMethods: ['GET', 'PUT', 'POST', 'HEAD', 'DELETE'],
        AllowedHeaders: ['*'],
        ExposeHeaders: ['ETag'],
        MaxAgeSeconds: 3600,
      }],
    },
  }));
}
