package jobqueue_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolq/spool/shared/jobqueue"
	"github.com/spoolq/spool/shared/pgtest"
	"github.com/spoolq/spool/shared/postgres"
)

// Resize is a kind: its name, payload and policy in one place.
type Resize struct {
	ImageID int64 `json:"image_id" jsonschema:"minimum=1"`
	Width   int   `json:"width" jsonschema:"minimum=1,maximum=8192"`
}

func (Resize) Kind() string { return "images.resize" }

func (Resize) Policy() jobqueue.Policy {
	return jobqueue.Policy{MaxAttempts: 5, Timeout: time.Minute}
}

// examplePool is a fresh migrated database for the examples; a program
// opens its own pool and runs postgres.Spool(schema).Apply once.
func examplePool() (*pgxpool.Pool, func()) {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pgtest.AdminURL())
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("spool_example_%d", os.Getpid())
	_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		log.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, pgtest.WithDatabase(pgtest.AdminURL(), name))
	if err != nil {
		log.Fatal(err)
	}
	migrations, _ := postgres.Spool("")
	if _, err := migrations.Apply(ctx, pool); err != nil {
		log.Fatal(err)
	}
	return pool, func() {
		pool.Close()
		if a, err := pgx.Connect(ctx, pgtest.AdminURL()); err == nil {
			_, _ = a.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			a.Close(ctx)
		}
	}
}

// Enqueue a job in the same transaction as the rows that call for it: it
// exists, and wakes workers, exactly when they do.
func ExampleClient_EnqueueTx() {
	pool, done := examplePool()
	defer done()
	ctx := context.Background()
	client, err := jobqueue.NewClient(pool, nil)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE images (id bigint PRIMARY KEY, path text)`); err != nil {
		log.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO images VALUES (1, 'cat.png')`); err != nil {
			return err
		}
		res, err := client.EnqueueTx(ctx, tx, jobqueue.EnqueueParams{Kind: Resize{}.Kind(), Payload: Resize{ImageID: 1, Width: 640}})
		if err == nil {
			fmt.Println(res.Job.Kind, res.Job.Status, "attempts allowed:", res.Job.MaxAttempts)
		}
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: images.resize pending attempts allowed: 5
}

// Run a worker with a kind of your own; the worker publishes the kind to
// the catalog, with the JSON Schema of its payload.
func ExampleWorker() {
	pool, done := examplePool()
	defer done()
	ctx, stop := context.WithCancel(context.Background())
	kinds := jobqueue.NewKinds()
	resized := make(chan int64, 1)
	jobqueue.AddKind(kinds, func(ctx context.Context, job *jobqueue.Job, r Resize) error {
		resized <- r.ImageID
		return nil
	}, &jobqueue.KindOpts{Description: "resizes an image"})
	client, err := jobqueue.NewClient(pool, &jobqueue.ClientOpts{Kinds: kinds})
	if err != nil {
		log.Fatal(err)
	}
	worker, err := jobqueue.NewWorker(client, kinds, jobqueue.WorkerConfig{ID: "example",
		Queues: []jobqueue.QueueConfig{{Name: jobqueue.DefaultQueue, Concurrency: 2}}})
	if err != nil {
		log.Fatal(err)
	}
	finished := make(chan error, 1)
	go func() { finished <- worker.Run(ctx) }()
	if _, err := client.Enqueue(ctx, jobqueue.EnqueueParams{Kind: "images.resize", Payload: Resize{ImageID: 7, Width: 320}}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("resized image", <-resized)
	stop()
	if err := <-finished; err != nil {
		log.Fatal(err)
	}
	catalog, _ := client.Kinds(context.Background())
	for _, k := range catalog {
		fmt.Println("published:", k.Name, "-", k.Description)
	}
	// Output:
	// resized image 7
	// published: images.resize - resizes an image
}

// Invalid parameters are refused before anything is written, naming the
// field at fault.
func ExampleCheckParams() {
	err := jobqueue.CheckParams(jobqueue.EnqueueParams{Kind: "images.resize", Queue: "Not A Queue"})
	fmt.Println(err)
	// Output: queue: must be 1 to 64 characters of a-z, 0-9, '_', '.' and '-'
}
