import { inject } from 'vitest';

/** Point the AWS SDK's standard environment at the test SeaweedFS (setup file for S3 projects). */
const s3 = inject('s3');
// The pinned SDK works on Node 20; its notice is about future releases. Keep test output readable.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
process.env.AWS_ENDPOINT_URL_S3 = s3.endpoint;
process.env.AWS_ACCESS_KEY_ID = s3.accessKey;
process.env.AWS_SECRET_ACCESS_KEY = s3.secretKey;
process.env.AWS_REGION = s3.region;
