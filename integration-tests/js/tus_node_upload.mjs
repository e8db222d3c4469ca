// Uploads one file to a tus server with tus-js-client under Node, as an application using
// the library would, and reports what happened as JSON lines on stdout, for the integration
// tests (integration-tests/test_tus_js_client.py) to check:
//   {"event":"request","method":"PATCH","url":...,"uploadOffset":"0"}
//   {"event":"response","method":"PATCH","url":...,"status":204,"uploadOffset":"...","depotUploadId":...}
//   {"event":"previous","count":1}       uploads found in the URL storage (with "resume")
//   {"event":"progress","bytesSent":...,"bytesTotal":...}   the first one, then one per MiB
//   {"event":"retry","message":...}      tus-js-client chose to retry after an error
//   {"event":"aborted","url":...}        stopped with upload.abort() (with "abortAfterBytes")
//   {"event":"success","url":...,"depotUploadId":...}
//   {"event":"error","message":...}
// Exit code 0 after success or a requested abort, 1 after an error.
//
// Usage: node tus_node_upload.mjs '<JSON options>' with
//   endpoint      the creation URL (https://host/api/v1/tus)
//   token         Depot bearer token
//   file          path of the file to upload (read with fs.createReadStream)
//   metadata      tus Upload-Metadata pairs ({"filename": ..., "filetype": ...})
//   urlStorage    path of a FileUrlStorage JSON file where the upload URL is kept (optional)
//   resume        look the file up in urlStorage and continue that upload (default false)
//   retryDelays   tus-js-client's retryDelays (default: null, no retries)
//   chunkSize     bytes per PATCH (default: the whole rest of the file in one PATCH)
//   uploadDataDuringCreation  send the first chunk in the creation POST (default false)
//   abortAfterBytes  call upload.abort() once this many bytes were sent (optional)
import { createReadStream } from 'node:fs'
import * as tus from 'tus-js-client'

const options = JSON.parse(process.argv[2])
const MIB = 1024 * 1024

function emit(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`)
}

function finish(code) {
  // Node's global agent keeps connections alive: leave without waiting for them to close.
  process.stdout.write('', () => process.exit(code))
}

let aborted = false
let nextProgressReport = 0

const upload = new tus.Upload(createReadStream(options.file), {
  endpoint: options.endpoint,
  headers: { Authorization: `Bearer ${options.token}` },
  metadata: options.metadata,
  chunkSize: options.chunkSize ?? Number.POSITIVE_INFINITY,
  uploadDataDuringCreation: Boolean(options.uploadDataDuringCreation),
  retryDelays: options.retryDelays ?? null,
  urlStorage: options.urlStorage ? new tus.FileUrlStorage(options.urlStorage) : undefined,
  storeFingerprintForResuming: Boolean(options.urlStorage),
  removeFingerprintOnSuccess: false,
  onBeforeRequest(req) {
    emit({
      event: 'request',
      method: req.getMethod(),
      url: req.getURL(),
      uploadOffset: req.getHeader('Upload-Offset') ?? null,
    })
  },
  onAfterResponse(req, res) {
    emit({
      event: 'response',
      method: req.getMethod(),
      url: req.getURL(),
      status: res.getStatus(),
      uploadOffset: res.getHeader('Upload-Offset') ?? null,
      depotUploadId: res.getHeader('Depot-Upload-Id') ?? null,
      contentLocation: res.getHeader('Content-Location') ?? null,
    })
  },
  onProgress(bytesSent, bytesTotal) {
    if (bytesSent >= nextProgressReport) {
      emit({ event: 'progress', bytesSent, bytesTotal })
      nextProgressReport = bytesSent + MIB
    }
    if (options.abortAfterBytes != null && !aborted && bytesSent >= options.abortAfterBytes) {
      aborted = true
      upload.abort(false).then(() => {
        emit({ event: 'aborted', url: upload.url, bytesSent })
        finish(0)
      })
    }
  },
  onShouldRetry(err, retryAttempt) {
    // tus-js-client's own rule (retry unless the server answered 4xx other than 409 and
    // 423), reported.
    const status = err.originalResponse ? err.originalResponse.getStatus() : 0
    const retry = !(status >= 400 && status < 500) || status === 409 || status === 423
    emit({ event: 'retry', attempt: retryAttempt, status, retry, message: String(err) })
    return retry
  },
  onSuccess(payload) {
    const last = payload.lastResponse
    emit({
      event: 'success',
      url: upload.url,
      depotUploadId: last.getHeader('Depot-Upload-Id') ?? null,
      contentLocation: last.getHeader('Content-Location') ?? null,
    })
    finish(0)
  },
  onError(err) {
    emit({ event: 'error', message: String(err) })
    finish(1)
  },
})

if (options.resume) {
  const previous = await upload.findPreviousUploads()
  emit({ event: 'previous', count: previous.length, urls: previous.map((p) => p.uploadUrl) })
  if (previous.length > 0) upload.resumeFromPreviousUpload(previous[0])
}
upload.start()
