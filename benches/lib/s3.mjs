// The store's own S3 API: bucket CORS for browsers, and reading back (then deleting) what an
// upload stored, to check its SHA-256.
import { createHash } from 'node:crypto';
import {
  S3Client, GetObjectCommand, DeleteObjectCommand, PutBucketCorsCommand,
} from '@aws-sdk/client-s3';

export function s3Client({ endpoint, accessKeyId, secretAccessKey, region }) {
  return new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Lets pages of any origin PUT parts and read their ETags. */
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

/**
 * Streams the object, compares its size and SHA-256 with the file's, then deletes it (the disk
 * is shared). Resolves to true when they match.
 */
export async function verifyAndDelete(client, Bucket, Key, file) {
  const { Body } = await client.send(new GetObjectCommand({ Bucket, Key }));
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of Body) {
    hash.update(chunk);
    size += chunk.length;
  }
  await client.send(new DeleteObjectCommand({ Bucket, Key }));
  return size === file.size && hash.digest('hex') === file.sha256;
}
