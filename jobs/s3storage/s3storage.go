// Package s3storage keeps export files in an S3-compatible object store
// (AWS S3, MinIO, Ceph, versitygw...), for hosts whose instances share no
// disk. It is a package of its own so that only hosts that use it
// compile the AWS SDK.
//
//	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true, Credentials: creds})
//	runner, err := jobs.New(db, driver, exporter, jobs.WithStorage(s3storage.New(client, "exports")))
//
// The bucket should be private (no public ACL or policy): downloads go
// through the job API, which checks the session, and never straight to
// the store.
package s3storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/agentbot/export/jobs"
)

// Storage is a jobs.Storage in one bucket, under an optional key prefix.
type Storage struct {
	client *s3.Client
	bucket string
	prefix string
	tmpDir string
}

var (
	_ jobs.Storage    = (*Storage)(nil)
	_ jobs.Redirector = (*Storage)(nil)
)

// Option configures a Storage.
type Option func(*Storage)

// WithPrefix puts every object under prefix (for example "exports/").
func WithPrefix(p string) Option { return func(s *Storage) { s.prefix = p } }

// WithTempDir sets where a document is spooled before its upload
// (default os.TempDir()). The file is unlinked as soon as it is created,
// so nothing is left there even if the process dies.
func WithTempDir(dir string) Option { return func(s *Storage) { s.tmpDir = dir } }

// New returns a Storage in bucket, which must exist.
func New(client *s3.Client, bucket string, opts ...Option) *Storage {
	s := &Storage{client: client, bucket: bucket}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// Put spools the document to an unlinked temporary file, then uploads it
// in one PutObject: the object appears whole or not at all, and an upload
// cut by a crash leaves nothing under key.
func (s *Storage) Put(ctx context.Context, key string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(s.tmpDir, "export-upload-*")
	if err != nil {
		return err
	}
	defer f.Close()
	os.Remove(f.Name()) // the data lives as long as the descriptor
	if err := write(f); err != nil {
		return err
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.prefix + key),
		Body:          f,
		ContentLength: aws.Int64(size),
		ContentType:   aws.String("application/json"),
	})
	return err
}

// Open returns the object, read with ranged GETs as it is seeked in.
func (s *Storage) Open(ctx context.Context, key string) (jobs.Object, error) {
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)})
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("s3storage: %s: %w", key, fs.ErrNotExist)
		}
		return nil, err
	}
	size := aws.ToInt64(head.ContentLength)
	return &object{ctx: ctx, s: s, key: s.prefix + key, size: size, etag: aws.ToString(head.ETag)}, nil
}

// Delete removes the object; S3 answers a missing key as a success.
func (s *Storage) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.prefix + key)})
	if err != nil && notFound(err) {
		return nil
	}
	return err
}

// Keys lists the objects under the prefix.
func (s *Storage) Keys(ctx context.Context) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			k := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if k != "" && !strings.Contains(k, "/") {
				keys = append(keys, k)
			}
		}
	}
	return keys, nil
}

// RedirectURL presigns a GET of key, valid for ttl, whose answer names the
// download filename and has the endpoint's Content-Type and no-store
// (S3's response-* overrides), for jobs.WithPresignedRedirect.
func (s *Storage) RedirectURL(ctx context.Context, key string, ttl time.Duration, filename string) (string, error) {
	req, err := s3.NewPresignClient(s.client).PresignGetObject(ctx, &s3.GetObjectInput{
		Bucket:                     aws.String(s.bucket),
		Key:                        aws.String(s.prefix + key),
		ResponseContentDisposition: aws.String(`attachment; filename="` + filename + `"`),
		ResponseContentType:        aws.String("application/json"),
		ResponseCacheControl:       aws.String("no-store"),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", err
	}
	return req.URL, nil
}

func notFound(err error) bool {
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// object reads an S3 object from its offset with one GET per run of
// sequential reads; a Seek elsewhere closes the body and the next Read
// asks again from there. If-Match pins every GET to the object Open saw:
// a replaced object fails the read rather than mixing two documents.
type object struct {
	ctx  context.Context
	s    *Storage
	key  string
	size int64
	etag string
	off  int64
	body io.ReadCloser
}

func (o *object) Read(p []byte) (int, error) {
	if o.off >= o.size {
		return 0, io.EOF
	}
	if o.body == nil {
		in := &s3.GetObjectInput{Bucket: aws.String(o.s.bucket), Key: aws.String(o.key), Range: aws.String(fmt.Sprintf("bytes=%d-", o.off))}
		if o.etag != "" {
			in.IfMatch = aws.String(o.etag)
		}
		out, err := o.s.client.GetObject(o.ctx, in)
		if err != nil {
			return 0, err
		}
		o.body = out.Body
	}
	n, err := o.body.Read(p)
	o.off += int64(n)
	if err == io.EOF && o.off < o.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (o *object) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = o.off + offset
	case io.SeekEnd:
		abs = o.size + offset
	default:
		return 0, errors.New("s3storage: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("s3storage: negative position")
	}
	if abs != o.off && o.body != nil {
		o.body.Close()
		o.body = nil
	}
	o.off = abs
	return abs, nil
}

func (o *object) Close() error {
	if o.body != nil {
		return o.body.Close()
	}
	return nil
}
